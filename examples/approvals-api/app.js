// An approvals API protected by Keyward in-process: reading needs `read`, writing needs `write`.
import Fastify from "fastify";
import { keywardFastify } from "keyward/fastify";

/**
 * @param {import("keyward").Keyward | import("keyward/fastify").Verifier} keyward the engine (or a remote KeywardClient)
 * @returns {import("fastify").FastifyInstance}
 */
export function buildApprovalsApi(keyward) {
  const app = Fastify();
  const auth = keywardFastify(app, keyward);
  /** @type {Map<string, {id: string, title: string, status: string, requested_by: string}>} */
  const approvals = new Map();
  let next = 1;

  app.get("/approvals/not-complete", { preHandler: auth.require({ scopes: ["read"] }) }, async () => ({
    data: [...approvals.values()].filter((a) => a.status === "pending"),
  }));

  const createBody = {
    type: "object",
    required: ["title"],
    additionalProperties: false,
    properties: { title: { type: "string", minLength: 1, maxLength: 200 } },
  };
  app.post("/approvals", { preHandler: auth.require({ scopes: ["write"] }), schema: { body: createBody } }, async (request, reply) => {
    const owner = request.apiKey?.owner;
    const approval = {
      id: `apr_${next++}`,
      title: /** @type {{title: string}} */ (request.body).title,
      status: "pending",
      requested_by: `${owner?.type}:${owner?.id}`,
    };
    approvals.set(approval.id, approval);
    return reply.code(201).send(approval);
  });

  const statusBody = {
    type: "object",
    required: ["status"],
    additionalProperties: false,
    properties: { status: { enum: ["approved", "rejected"] } },
  };
  app.post(
    "/approvals/:id/status",
    { preHandler: auth.require({ scopes: ["write"] }), schema: { body: statusBody } },
    async (request, reply) => {
      const approval = approvals.get(/** @type {{id: string}} */ (request.params).id);
      if (!approval) return reply.code(404).send({ code: "NOT_FOUND" });
      approval.status = /** @type {{status: string}} */ (request.body).status;
      return approval;
    },
  );
  return app;
}
