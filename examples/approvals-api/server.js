// node examples/approvals-api/server.js   (after `npm install`, which builds Keyward)
import { Keyward } from "keyward";
import { SqliteKeyStore } from "keyward/sqlite";
import { buildApprovalsApi } from "./app.js";

const store = new SqliteKeyStore({ filename: process.env.KEYWARD_DB ?? "./data/keyward.db" });
await store.migrate();
const port = Number(process.env.PORT ?? 3000);
const app = buildApprovalsApi(new Keyward({ store }));
await app.listen({ port, host: "127.0.0.1" });
console.log(`approvals API on http://127.0.0.1:${port}`);
