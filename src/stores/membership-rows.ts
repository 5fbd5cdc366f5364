import type { MembershipRecord, OrganizationRole } from "../core/organizations.js";

/**
 * Organization members (docs/organizations.md): which console user holds which role in which
 * organization. Organizations themselves are owners (the key store's owners table); a member
 * row names one by id, so an organization created on first use (a portal session) can gain
 * members later. A user deleted takes their memberships with them.
 */
export function membershipSchema(bigint: "INTEGER" | "BIGINT", strict: string): string {
  return `
  CREATE TABLE organization_members (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    added_at ${bigint} NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
  )${strict};
  CREATE INDEX organization_members_user ON organization_members (user_id);
`;
}

export interface MembershipRow {
  organization_id: string;
  user_id: string;
  role: string;
  added_at: number | string;
  added_by: string;
}

const COLUMNS = "organization_id, user_id, role, added_at, added_by";

/** `?` placeholders; the PostgreSQL store numbers them. */
export const MEMBERSHIP_SQL = {
  get: `SELECT ${COLUMNS} FROM organization_members WHERE organization_id = ? AND user_id = ?`,
  ofUser: `SELECT ${COLUMNS} FROM organization_members WHERE user_id = ? ORDER BY organization_id`,
  ofOrganization: `SELECT ${COLUMNS} FROM organization_members WHERE organization_id = ? ORDER BY added_at, user_id`,
  upsert: `INSERT INTO organization_members (${COLUMNS}) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role`,
  remove: "DELETE FROM organization_members WHERE organization_id = ? AND user_id = ?",
  countOwners: "SELECT COUNT(*) AS n FROM organization_members WHERE organization_id = ? AND role = 'owner'",
} as const;

export const rowToMembership = (row: MembershipRow): MembershipRecord => ({
  organizationId: row.organization_id,
  userId: row.user_id,
  role: row.role as OrganizationRole,
  addedAt: Number(row.added_at),
  addedBy: row.added_by,
});

export const membershipToValues = (m: MembershipRecord): unknown[] => [m.organizationId, m.userId, m.role, m.addedAt, m.addedBy];
