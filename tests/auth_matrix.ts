// The matrix of access control at the index: every client (none, a wrong secret, a reader, a
// writer) × every request, and the status docs/security.md ("Credentials") documents for it.
// Shared by tests/unit/auth_test.ts (Auth.check) and tests/cluster/auth_test.ts (a real cluster).

export function basic(accessKey: string, secret: string): string {
  return `Basic ${btoa(`${accessKey}:${secret}`)}`;
}

/** The requests of the matrix: a method and whether it is a listing. */
export const OPS = ["GET", "HEAD", "PUT", "DELETE", "UNLINK", "list"] as const;

export type Op = typeof OPS[number];

/** The clients of the matrix. */
export const CLIENTS = ["none", "wrong", "reader", "writer"] as const;

export type Client = typeof CLIENTS[number];

/** The documented status of each client × request (docs/security.md, "Credentials"). */
export const EXPECTED: Record<Client, Record<Op, number>> = {
  none: { GET: 401, HEAD: 401, PUT: 401, DELETE: 401, UNLINK: 401, list: 401 },
  wrong: { GET: 401, HEAD: 401, PUT: 401, DELETE: 401, UNLINK: 401, list: 401 },
  reader: { GET: 302, HEAD: 302, PUT: 403, DELETE: 403, UNLINK: 403, list: 403 },
  writer: { GET: 302, HEAD: 302, PUT: 201, DELETE: 204, UNLINK: 204, list: 200 },
};

/** The `Authorization` header of a client of the matrix, or null. */
export function headerOf(
  client: Client,
  readerSecret: string,
  writerSecret: string,
): string | null {
  switch (client) {
    case "none":
      return null;
    case "wrong":
      return basic("writer", writerSecret + "x");
    case "reader":
      return basic("reader", readerSecret);
    case "writer":
      return basic("writer", writerSecret);
  }
}

export function methodOf(op: Op): string {
  return op === "list" ? "GET" : op;
}
