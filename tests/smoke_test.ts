import assert from "node:assert/strict";
import { getFollow, put, testCluster } from "./helpers.ts";

Deno.test("a value PUT through the index reads back through the redirect", async () => {
  await using cluster = await testCluster();
  assert.equal(await put(cluster.url, "/wehave", "bigswag"), 201);
  const answer = await getFollow(cluster.url, "/wehave");
  assert.equal(answer.status, 200);
  assert.equal(answer.body, "bigswag");
});
