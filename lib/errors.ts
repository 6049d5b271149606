// How failures are told, in one place for the server, the volumes' client and the operations: an
// error's first line, and an answer that carries a reason.

/** The first line of an error's message (or of what was thrown), for a one-line reason. */
export function firstLine(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

/** A plain-text answer whose body is `reason` and a newline. */
export function textResponse(
  status: number,
  reason: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`${reason}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}
