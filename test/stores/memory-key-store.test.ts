import { MemoryKeyStore } from "../../src/stores/memory/memory-key-store.js";
import { runKeyStoreContract } from "./key-store.contract.js";

runKeyStoreContract("memory", async () => ({ store: new MemoryKeyStore(), cleanup: async () => {} }));
