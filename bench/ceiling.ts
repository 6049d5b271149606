// The bench's ceiling: the barest Deno HTTP server, answering every request with an empty 404, as
// the index does for a missing key. Under the same wrk load it shows what Deno.serve itself can do
// on this machine in this run, so the index's figures are read as a share of it.
//
//   deno run -A bench/ceiling.ts PORT

const port = Number(Deno.args[0]);
if (!Number.isInteger(port) || port < 1) {
  console.error("ceiling: usage: deno run -A bench/ceiling.ts PORT");
  Deno.exit(2);
}
const server = Deno.serve(
  { hostname: "127.0.0.1", port, onListen() {} },
  () => new Response(null, { status: 404, headers: { "content-length": "0" } }),
);
Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
