// Stores on a real Deno KV in a temp directory for the tests of lib/core/store.ts, and the record
// they write most. Shared by tests/unit/store_test.ts and tests/faults/store_test.ts.

import type { KeyRecord } from "../lib/core/record.ts";
import { Store } from "../lib/core/store.ts";

/** A temp directory for one store, removed on dispose. */
export async function tempDb(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "mkv-store-test-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** A store opened in `db`, closed on dispose. */
export async function openStore(db: string): Promise<Store & Disposable> {
  const store = await Store.open(db);
  return Object.assign(store, { [Symbol.dispose]: () => store.close() });
}

export function live(volume: string, md5 = ""): KeyRecord {
  return { state: "live", volumes: [volume], md5 };
}
