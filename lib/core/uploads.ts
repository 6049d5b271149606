// The KV layout of S3's multipart uploads (docs/s3.md, "Multipart uploads"). An upload in
// progress is two entries under UPLOADS_PREFIX: by id, `["u", "id", id]` → its state as JSON,
// and by object key for the listing, `["u", "key", bucket, key, id]` → its creation time. Upload
// ids begin with their creation time, so the oldest come first for the reaper. A completed
// upload's result stays a while under `["u", "done", id]`, to answer a repeated Complete. The
// parts themselves are ordinary records under PARTS_PREFIX (lib/placement.ts).

import { PARTS_PREFIX } from "../placement.ts";
import { UPLOADS_PREFIX as UPLOADS } from "./layout.ts";
import type { Store } from "./store.ts";

/** An upload's entry by id. */
export interface UploadState {
  bucket: string;
  key: string;
  /** When it was created, in milliseconds since the epoch. */
  initiated: number;
  /** `Content-Type` given at Create, for the final object. */
  type?: string;
  /** `x-amz-meta-*` given at Create (names lower-case, without the prefix). */
  meta?: Record<string, string>;
  /** The standard headers given at Create (lib/s3/headers.ts, STORED_HEADERS). */
  headers?: Record<string, string>;
  /** The checksum asked for at Create: its algorithm (lower-case) and type. */
  checksum?: { algorithm: string; type: "COMPOSITE" | "FULL_OBJECT" };
}

/** What a repeated CompleteMultipartUpload is answered from. */
export interface CompletedUpload {
  bucket: string;
  key: string;
  etag: string;
  /** The object's checksum, if the upload asked for one. */
  checksum?: { algorithm: string; base64: string; type?: "COMPOSITE" | "FULL_OBJECT" };
}

/** An upload as the listing by object key has it. */
export interface ListedUpload {
  key: string;
  uploadId: string;
  initiated: number;
}

/** Records a new upload under both its entries at once; false if the commit failed. */
export async function recordUpload(
  store: Store,
  uploadId: string,
  state: UploadState,
): Promise<boolean> {
  const committed = await store.kv.atomic()
    .set([UPLOADS, "id", uploadId], JSON.stringify(state))
    .set([UPLOADS, "key", state.bucket, state.key, uploadId], state.initiated)
    .commit();
  return committed.ok;
}

/** The upload's state, or null if there is no such upload. */
export async function uploadState(store: Store, uploadId: string): Promise<UploadState | null> {
  const entry = await store.kv.get<string>([UPLOADS, "id", uploadId]);
  return entry.value === null ? null : JSON.parse(entry.value) as UploadState;
}

/** Whether the upload is still in progress. */
export async function uploadExists(store: Store, uploadId: string): Promise<boolean> {
  return (await store.kv.get([UPLOADS, "id", uploadId])).value !== null;
}

/** Removes the upload's entries at once (not its parts); false if the commit failed. */
export async function forgetUpload(
  store: Store,
  uploadId: string,
  state: UploadState,
): Promise<boolean> {
  const committed = await store.kv.atomic()
    .delete([UPLOADS, "id", uploadId])
    .delete([UPLOADS, "key", state.bucket, state.key, uploadId])
    .commit();
  return committed.ok;
}

/** The result of a Complete of the upload within the last `ttlMs` it was kept for, if any. */
export async function completedUpload(
  store: Store,
  uploadId: string,
): Promise<CompletedUpload | null> {
  const done = await store.kv.get<string>([UPLOADS, "done", uploadId]);
  return done.value === null ? null : JSON.parse(done.value) as CompletedUpload;
}

/** Keeps a Complete's result for `ttlMs`. */
export async function recordCompleted(
  store: Store,
  uploadId: string,
  completed: CompletedUpload,
  options: { ttlMs: number },
): Promise<void> {
  await store.kv.set([UPLOADS, "done", uploadId], JSON.stringify(completed), {
    expireIn: options.ttlMs,
  });
}

/**
 * The bucket's uploads in object key order (a key's in the order they were made), from the
 * entry at or after `start`: an object key, or a key and an upload id within it.
 */
export async function* uploadsByKey(
  store: Store,
  bucket: string,
  start: { key: string; uploadId?: string },
  options: { batchSize: number },
): AsyncGenerator<ListedUpload> {
  const from: Deno.KvKey = start.uploadId === undefined
    ? [UPLOADS, "key", bucket, start.key]
    : [UPLOADS, "key", bucket, start.key, start.uploadId];
  const entries = store.kv.list<number>(
    { prefix: [UPLOADS, "key", bucket], start: from },
    { batchSize: options.batchSize },
  );
  for await (const entry of entries) {
    yield { key: entry.key[3] as string, uploadId: entry.key[4] as string, initiated: entry.value };
  }
}

/** Every upload in progress, oldest first. */
export async function* uploadsByAge(
  store: Store,
): AsyncGenerator<{ uploadId: string; state: UploadState }> {
  for await (const entry of store.kv.list<string>({ prefix: [UPLOADS, "id"] })) {
    yield { uploadId: entry.key[2] as string, state: JSON.parse(entry.value) as UploadState };
  }
}

/**
 * Whether there is any upload entry or any part record: the reaper has nothing to do (and the
 * S3 front need not be loaded) otherwise.
 */
export async function hasUploads(store: Store): Promise<boolean> {
  for await (const _ of store.kv.list({ prefix: [UPLOADS] }, { limit: 1 })) return true;
  for await (const _ of store.list({ prefix: PARTS_PREFIX, state: "all" })) return true;
  return false;
}
