import { type TSchema, Type } from "@sinclair/typebox";
import { OUTCOME_CODES } from "../core/outcomes.js";
import { WEBHOOK_EVENT_TYPES } from "../core/webhook-events.js";

/**
 * The one schema source: these TypeBox schemas validate requests (Ajv, no coercion, unknown
 * fields refused) and generate the OpenAPI document at /openapi.json.
 */
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const OwnerSchema = Type.Object(
  {
    type: Type.Union([Type.Literal("user"), Type.Literal("application"), Type.Literal("organization")]),
    id: Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_.@:-]+$" }),
  },
  { additionalProperties: false },
);

export const EnvironmentSchema = Type.Union([Type.Literal("sandbox"), Type.Literal("production")]);
const Scope = Type.String({ minLength: 1, maxLength: 128 });
const Name = Type.String({ minLength: 1, maxLength: 100 });
const Timestamp = Type.String({ format: "date-time" });

export const RateLimitSchema = Type.Object(
  {
    requests: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    per_seconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);

export const QuotaSchema = Type.Union([
  Type.Object(
    { limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000 }), period: Type.Union([Type.Literal("day"), Type.Literal("month")]) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      remaining: Type.Integer({ minimum: 0, maximum: 1_000_000_000_000 }),
      refill: Type.Optional(
        Type.Object(
          {
            amount: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
            every_seconds: Type.Integer({ minimum: 1, maximum: 31_536_000 }),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
]);

const Metadata = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 64 });
const Cidrs = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 });
const Scopes = Type.Array(Scope, { maxItems: 64 });
/** A delegation ceiling (docs/authority.md): what a key may confer; null removes it. */
const GrantableScopes = Nullable(Scopes);
const GrantableEnvironments = Nullable(Type.Array(EnvironmentSchema, { minItems: 1, maxItems: 2, uniqueItems: true }));
export const KeyStatusSchema = Type.Union([
  Type.Literal("active"),
  Type.Literal("disabled"),
  Type.Literal("revoked"),
  Type.Literal("expired"),
  Type.Literal("awaiting_pickup"),
]);

export const CreateKeyBody = Type.Object(
  {
    owner: OwnerSchema,
    name: Name,
    environment: EnvironmentSchema,
    scopes: Scopes,
    expires_at: Type.Optional(Nullable(Timestamp)),
    rate_limit: Type.Optional(Nullable(RateLimitSchema)),
    concurrency: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 10_000 }))),
    quota: Type.Optional(Nullable(QuotaSchema)),
    allowed_cidrs: Type.Optional(Cidrs),
    metadata: Type.Optional(Metadata),
    grantable_scopes: Type.Optional(GrantableScopes),
    grantable_environments: Type.Optional(GrantableEnvironments),
  },
  { additionalProperties: false },
);

export const UpdateKeyBody = Type.Object(
  {
    name: Type.Optional(Name),
    scopes: Type.Optional(Scopes),
    expires_at: Type.Optional(Nullable(Timestamp)),
    rate_limit: Type.Optional(Nullable(RateLimitSchema)),
    concurrency: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 10_000 }))),
    quota: Type.Optional(Nullable(QuotaSchema)),
    allowed_cidrs: Type.Optional(Cidrs),
    metadata: Type.Optional(Metadata),
    enabled: Type.Optional(Type.Boolean()),
    grantable_scopes: Type.Optional(GrantableScopes),
    grantable_environments: Type.Optional(GrantableEnvironments),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const RotateKeyBody = Type.Object(
  { grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 24 * 3600 })) },
  { additionalProperties: false },
);

export const RevokeKeyBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });

export const VerifyKeyBody = Type.Object(
  {
    key: Type.String({ maxLength: 4096 }),
    scopes: Type.Optional(Scopes),
    environment: Type.Optional(EnvironmentSchema),
    ip: Type.Optional(Type.String({ maxLength: 64, description: "the end client's IPv4 or IPv6 address; anything else is 400" })),
  },
  { additionalProperties: false },
);

export const OwnerParams = Type.Object({
  type: Type.Union([Type.Literal("user"), Type.Literal("application"), Type.Literal("organization")]),
  id: Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_.@:-]+$" }),
});

export const UpdateOwnerBody = Type.Object({ disabled: Type.Boolean() }, { additionalProperties: false });

export const KeyIdParams = Type.Object({ id: Type.String({ pattern: "^key_[0-9A-Za-z]{16,40}$" }) });

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
};

export const ListKeysQuery = Type.Object(
  {
    ...PageQuery,
    owner_id: Type.Optional(Type.String({ maxLength: 128 })),
    owner_type: Type.Optional(Type.Union([Type.Literal("user"), Type.Literal("application"), Type.Literal("organization")])),
    environment: Type.Optional(EnvironmentSchema),
    status: Type.Optional(KeyStatusSchema),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        pattern: "^[^\\u0000-\\u001f\\u007f]+$",
        description: "a key id (that key), a ref or its last four characters, or part of the name (case-insensitive)",
      }),
    ),
    expiring_within: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10 * 365 * 86_400,
        description: "seconds: keys not yet expired whose expires_at is at most this far from now",
      }),
    ),
    include_total: Type.Optional(Type.Boolean({ description: "also count every match (`total`): exact, so it reads every match" })),
  },
  { additionalProperties: false },
);

const AuditFilterQuery = {
  actor_id: Type.Optional(Type.String({ maxLength: 128 })),
  key_id: Type.Optional(Type.String({ maxLength: 128 })),
  action: Type.Optional(Type.String({ maxLength: 64 })),
  since: Type.Optional(Timestamp),
  until: Type.Optional(Timestamp),
};

export const ListAuditQuery = Type.Object({ ...PageQuery, ...AuditFilterQuery }, { additionalProperties: false });

/** The export takes the list's filters, and no paging: it streams every match. */
export const ExportAuditQuery = Type.Object(AuditFilterQuery, { additionalProperties: false });

export const AuthzQuery = Type.Object(
  { scopes: Type.Optional(Type.String({ maxLength: 2048 })), environment: Type.Optional(EnvironmentSchema) },
  { additionalProperties: true },
);

export const ProblemSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String(),
  request_id: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
});

export const KeyObjectSchema = Type.Object({
  id: Type.String(),
  ref: Type.String(),
  name: Type.String(),
  owner: OwnerSchema,
  environment: EnvironmentSchema,
  scopes: Type.Array(Type.String()),
  status: KeyStatusSchema,
  created_at: Timestamp,
  expires_at: Nullable(Timestamp),
  last_used_at: Nullable(Timestamp),
  last_used_ip: Nullable(Type.String()),
  revoked_at: Nullable(Timestamp),
  revoked_reason: Nullable(Type.String()),
  rate_limit: Nullable(RateLimitSchema),
  concurrency: Nullable(Type.Integer()),
  quota: Nullable(QuotaSchema),
  allowed_cidrs: Type.Array(Type.String()),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  rotated_from: Nullable(Type.String()),
  replaced_by: Nullable(Type.String()),
  grace_ends_at: Nullable(Timestamp),
  grantable_scopes: Nullable(Type.Array(Type.String())),
  grantable_environments: Nullable(Type.Array(EnvironmentSchema)),
  format: Type.String({ description: "keyward, or legacy:<name> for a key imported in a declared legacy format (docs/migrating.md)" }),
  external_id: Nullable(Type.String({ description: "the key's id in the system it was imported from" })),
});

/** A revocation: the key, and the predecessors of its lineage whose grace it ended. */
export const RevokedKeySchema = Type.Composite([KeyObjectSchema, Type.Object({ ended_grace: Type.Array(Type.String()) })]);

/** An ended grace: the key named, and the keys whose grace ended (the key itself, when it was in one). */
export const EndedGraceSchema = Type.Composite([KeyObjectSchema, Type.Object({ ended_grace: Type.Array(Type.String()) })]);

/** A page of keys; `total` only when asked for (`include_total=true`). */
export const KeyListSchema = Type.Object({
  data: Type.Array(KeyObjectSchema),
  next_cursor: Nullable(Type.String()),
  has_more: Type.Boolean(),
  total: Type.Optional(Type.Integer()),
});

export const LeakReportBody = Type.Object(
  {
    keys: Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 1000 }),
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: "^[^\\u0000-\\u001f\\u007f<>]+$" })),
  },
  { additionalProperties: false },
);

export const UsageQuerySchema = Type.Object(
  {
    key_id: Type.Optional(Type.String({ maxLength: 128 })),
    /** `user:alice` or `application:billing`. */
    owner: Type.Optional(Type.String({ maxLength: 200, pattern: "^(user|application|organization):.+$" })),
    outcome: Type.Optional(Type.Union(OUTCOME_CODES.map((code) => Type.Literal(code)))),
    bucket: Type.Optional(Type.Union([Type.Literal("minute"), Type.Literal("hour"), Type.Literal("day")])),
    /** `key` (default): a row per bucket, key and outcome; `outcome`: summed over keys, no `key_id`. */
    group_by: Type.Optional(Type.Union([Type.Literal("key"), Type.Literal("outcome")])),
    since: Type.Optional(Timestamp),
    until: Type.Optional(Timestamp),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);

export const UsageResponseSchema = Type.Object({
  bucket: Type.String(),
  since: Timestamp,
  until: Timestamp,
  group_by: Type.Union([Type.Literal("key"), Type.Literal("outcome")]),
  /** True when more rows matched than `limit`: the data is cut short (ask for a wider bucket or `group_by=outcome`). */
  has_more: Type.Boolean(),
  data: Type.Array(
    Type.Object({
      start: Timestamp,
      /** Absent with `group_by=outcome`; null for requests whose key was missing or unknown. */
      key_id: Type.Optional(Nullable(Type.String())),
      outcome: Type.String(),
      count: Type.Integer(),
    }),
  ),
});

export const RecentRequestsQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })), cursor: Type.Optional(Type.String({ maxLength: 64 })) },
  { additionalProperties: false },
);

export const RecentRequestsResponseSchema = Type.Object({
  /** How many requests the log keeps per key (KEYWARD_RECENT_REQUESTS); 0 when it is off. */
  kept: Type.Integer(),
  data: Type.Array(
    Type.Object({
      at: Timestamp,
      outcome: Type.String(),
      ip: Nullable(Type.String()),
      route: Nullable(Type.String()),
      missing_scopes: Type.Array(Type.String()),
    }),
  ),
  next_cursor: Nullable(Type.String()),
});

export const ReleaseLeaseBody = Type.Object(
  {
    lease_id: Type.String({ pattern: "^lease_[0-9A-Za-z]{20}$" }),
    /** The key the lease was taken for; default the calling key. Naming another key needs `keys:verify`. */
    key_id: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);
export const WebhookEventName = Type.Union([Type.Literal("*"), ...WEBHOOK_EVENT_TYPES.map((name) => Type.Literal(name))], {
  description: "an event type, or * for every event",
});

export const CreateWebhookBody = Type.Object(
  {
    url: Type.String({ minLength: 8, maxLength: 2048, description: "http(s) URL that receives POSTed events" }),
    events: Type.Optional(Type.Array(WebhookEventName, { minItems: 1, maxItems: 20, uniqueItems: true })),
    description: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: "^[^\\u0000-\\u001f\\u007f<>]+$" })),
  },
  { additionalProperties: false },
);

export const WebhookIdParams = Type.Object({ id: Type.String({ pattern: "^whk_[0-9A-Za-z]{16,40}$" }) });

export const ListWebhooksQuery = Type.Object(PageQuery, { additionalProperties: false });
// ---------------------------------------------------------------- people and key requests

const Email = Type.String({ minLength: 3, maxLength: 320 });
const Password = Type.String({ minLength: 1, maxLength: 256 });
const Reason = Type.String({ minLength: 1, maxLength: 500, pattern: "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f]+$" });

export const SignInBody = Type.Object({ email: Email, password: Password }, { additionalProperties: false });

export const ChangePasswordBody = Type.Object({ current_password: Password, new_password: Password }, { additionalProperties: false });

export const SetupBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 64 }), email: Email, password: Password },
  { additionalProperties: false },
);

/** Whether an issued link is emailed to the user (docs/api.md): default true when SMTP is configured. */
const SendEmail = Type.Optional(
  Type.Boolean({ description: "email the link to the user when SMTP is configured (default true); false: only return it" }),
);

/** Without `password`, the person is invited: the answer carries a one-time invite link (emailed unless `send_email` is false). */
export const CreateUserBody = Type.Object(
  {
    email: Email,
    password: Type.Optional(Password),
    role: Type.Union([Type.Literal("admin"), Type.Literal("member")]),
    send_email: SendEmail,
  },
  { additionalProperties: false },
);

/** `POST /v1/users/{id}/invite` and `/password-reset` (the body is optional). */
export const IssueLinkBody = Type.Object({ send_email: SendEmail }, { additionalProperties: false });

export const UpdateUserBody = Type.Object(
  { disabled: Type.Optional(Type.Boolean()), must_change_password: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);

/** A one-time invite or password-reset link, as issued (the token is in this answer only). */
export const UserLinkSchema = Type.Object({
  purpose: Type.Union([Type.Literal("invite"), Type.Literal("reset")]),
  token: Type.String(),
  /** `/dashboard/#/invite/<token>` or `/dashboard/#/reset/<token>`, for the dashboard's own origin. */
  path: Type.String(),
  /** `path` on `KEYWARD_PUBLIC_URL` when set, else on the origin this request reached (its `Host` and scheme as the service sees them). */
  url: Type.String(),
  expires_at: Timestamp,
  /** Whether the link was emailed to the user; the link is in this answer whatever it says. */
  delivery: Type.Union([
    Type.Object({ status: Type.Literal("sent"), to: Type.String() }),
    Type.Object({ status: Type.Literal("failed"), reason: Type.String() }),
    Type.Object({ status: Type.Literal("not_configured") }),
    Type.Object({ status: Type.Literal("not_requested") }),
  ]),
});

export const LinkTokenBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });

export const AcceptLinkBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 64 }), password: Password },
  { additionalProperties: false },
);

export const InspectLinkSchema = Type.Object({
  purpose: Type.Union([Type.Literal("invite"), Type.Literal("reset")]),
  email: Type.String(),
  expires_at: Timestamp,
});

export const UserIdParams = Type.Object({ id: Type.String({ pattern: "^usr_[0-9A-Za-z]{16,40}$" }) });

export const UserSchema = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: Type.Union([Type.Literal("admin"), Type.Literal("member")]),
  disabled: Type.Boolean(),
  /** False while an invited person has not chosen a password yet. */
  password_set: Type.Boolean(),
  /** An administrator requires a new password at the person's next request. */
  must_change_password: Type.Boolean(),
  created_at: Timestamp,
});

/** `GET /v1/users`: paged oldest first, searched and filtered on the server. */
export const ListUsersQuery = Type.Object(
  {
    ...PageQuery,
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 320,
        pattern: "^[^\\u0000-\\u001f\\u007f]+$",
        description: "part of the email (case-insensitive), or a user id (that user)",
      }),
    ),
    role: Type.Optional(Type.Union([Type.Literal("admin"), Type.Literal("member")])),
    disabled: Type.Optional(Type.Boolean()),
    include_total: Type.Optional(Type.Boolean({ description: "also count every match (`total`)" })),
  },
  { additionalProperties: false },
);

/** A page of users; `total` only when asked for (`include_total=true`). */
export const UserListSchema = Type.Object({
  data: Type.Array(UserSchema),
  next_cursor: Nullable(Type.String()),
  has_more: Type.Boolean(),
  total: Type.Optional(Type.Integer()),
});

const SessionId = Type.String({ pattern: "^ses_[0-9A-Za-z]{16,40}$" });

export const UserSessionParams = Type.Object({ id: Type.String({ pattern: "^usr_[0-9A-Za-z]{16,40}$" }), session_id: SessionId });

export const OwnSessionParams = Type.Object({ session_id: SessionId });

/** A live dashboard session: never its token, its digest or its CSRF token. */
export const SessionInfoSchema = Type.Object({
  /** The public id (`ses_…`): random, unrelated to the token. */
  id: Type.String(),
  created_at: Timestamp,
  last_seen_at: Timestamp,
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  /** The session this request came with. */
  current: Type.Boolean(),
});

export const SessionListSchema = Type.Object({ data: Type.Array(SessionInfoSchema) });

export const EndedSessionsSchema = Type.Object({ ended: Type.Integer({ minimum: 0 }) });

/** A created user; `invite` when it was created without a password. */
export const CreatedUserSchema = Type.Composite([UserSchema, Type.Object({ invite: Type.Optional(UserLinkSchema) })]);

export const CreateKeyRequestBody = Type.Object(
  { key_id: Type.Optional(Type.String({ pattern: "^key_[0-9A-Za-z]{16,40}$" })), reason: Type.Optional(Reason) },
  { additionalProperties: false },
);

export const RejectKeyRequestBody = Type.Object({ reason: Reason }, { additionalProperties: false });

export const KeyRequestIdParams = Type.Object({ id: Type.String({ pattern: "^kreq_[0-9A-Za-z]{16,40}$" }) });

export const ListKeyRequestsQuery = Type.Object(
  {
    ...PageQuery,
    owner_type: Type.Optional(Type.Union([Type.Literal("user"), Type.Literal("application"), Type.Literal("organization")])),
    owner_id: Type.Optional(Type.String({ maxLength: 128 })),
    status: Type.Optional(Type.Union([Type.Literal("pending"), Type.Literal("approved"), Type.Literal("rejected")])),
  },
  { additionalProperties: false },
);

export const KeyRequestSchema = Type.Object({
  id: Type.String(),
  sandbox_key_id: Type.String(),
  owner: OwnerSchema,
  requested_by: Type.Object({ type: Type.Union([Type.Literal("user"), Type.Literal("key")]), id: Type.String() }),
  reason: Nullable(Type.String()),
  status: Type.Union([Type.Literal("pending"), Type.Literal("approved"), Type.Literal("rejected")]),
  created_at: Timestamp,
  decided_at: Nullable(Timestamp),
  decided_by: Nullable(Type.String()),
  decision_reason: Nullable(Type.String()),
  issued_key_id: Nullable(Type.String()),
  claimed_at: Nullable(Timestamp),
  /** What was asked, recorded when the request was made: approval issues exactly this. */
  asked: Nullable(
    Type.Object({
      name: Type.String(),
      scopes: Type.Array(Type.String()),
      rate_limit: Nullable(RateLimitSchema),
      concurrency: Nullable(Type.Integer()),
      quota: Nullable(QuotaSchema),
      allowed_cidrs: Type.Array(Type.String()),
      metadata: Type.Record(Type.String(), Type.Unknown()),
      /** The production key expires this long after approval (a portal session's longest expiry); null: never. */
      expires_after_approval_seconds: Nullable(Type.Integer()),
    }),
  ),
});

// ---------------------------------------------------------------- imports (docs/migrating.md)

export const ImportKeysQuery = Type.Object(
  {
    dry_run: Type.Optional(Type.Boolean({ description: "validate and match every record, write nothing" })),
    strict: Type.Optional(Type.Boolean({ description: "stop at the first bad record" })),
    format: Type.Optional(
      Type.String({ pattern: "^[a-z0-9][a-z0-9_-]{0,31}$", description: "the legacy format of records that name none" }),
    ),
  },
  { additionalProperties: false },
);

export const ImportReportSchema = Type.Object({
  import_id: Type.String(),
  dry_run: Type.Boolean(),
  completed: Type.Boolean(),
  stopped_at_line: Nullable(Type.Integer()),
  records: Type.Integer(),
  created: Type.Integer(),
  unchanged: Type.Integer(),
  failed: Type.Integer(),
  created_by_format: Type.Record(Type.String(), Type.Integer()),
  errors: Type.Array(Type.Object({ line: Type.Integer(), reason: Type.String() })),
  errors_omitted: Type.Integer(),
  audit_event_id: Nullable(Type.String()),
});

// ---------------------------------------------------------------- organizations (docs/organizations.md)

const OrganizationId = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_.@:-]+$" });
export const OrganizationRoleSchema = Type.Union([
  Type.Literal("owner"),
  Type.Literal("admin"),
  Type.Literal("developer"),
  Type.Literal("viewer"),
]);

/** The limits every key of an organization draws from together; each null or absent is no shared limit. */
const SharedLimitFields = {
  rate_limit: Type.Optional(Nullable(RateLimitSchema)),
  concurrency: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 100_000 }))),
  quota: Type.Optional(Nullable(QuotaSchema)),
};

export const CreateOrganizationBody = Type.Object(
  {
    id: Type.Optional(OrganizationId),
    name: Name,
    ...SharedLimitFields,
  },
  { additionalProperties: false },
);

export const UpdateOrganizationBody = Type.Object(
  {
    name: Type.Optional(Name),
    disabled: Type.Optional(Type.Boolean()),
    ...SharedLimitFields,
  },
  { additionalProperties: false, minProperties: 1 },
);

export const OrganizationParams = Type.Object({ id: OrganizationId });
export const OrganizationMemberParams = Type.Object({ id: OrganizationId, user_id: Type.String({ minLength: 1, maxLength: 128 }) });

export const ListOrganizationsQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
    cursor: Type.Optional(Type.String({ maxLength: 400 })),
  },
  { additionalProperties: false },
);

export const AddOrganizationMemberBody = Type.Object(
  {
    user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    email: Type.Optional(Type.String({ minLength: 3, maxLength: 254 })),
    role: OrganizationRoleSchema,
  },
  { additionalProperties: false },
);

export const UpdateOrganizationMemberBody = Type.Object({ role: OrganizationRoleSchema }, { additionalProperties: false });

export const OrganizationSchema = Type.Object({
  id: Type.String(),
  name: Nullable(Type.String()),
  disabled: Type.Boolean(),
  created_at: Type.String(),
  shared_limits: Nullable(
    Type.Object({ rate_limit: Nullable(RateLimitSchema), concurrency: Nullable(Type.Integer()), quota: Nullable(QuotaSchema) }),
  ),
  /** The caller's role in it, when the caller is a member. */
  role: Nullable(OrganizationRoleSchema),
});

export const OrganizationMemberSchema = Type.Object({
  user_id: Type.String(),
  email: Nullable(Type.String()),
  role: OrganizationRoleSchema,
  added_at: Type.String(),
  added_by: Type.String(),
});
