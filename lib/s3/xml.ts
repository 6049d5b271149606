// S3's XML, built and parsed with fast-xml-parser: the bodies of answers (listings, multipart,
// errors) and of the requests that carry one (CompleteMultipartUpload, DeleteObjects). Text is
// escaped by the library, never by hand. Pure, but for `xmlResponse`/`s3Error`, which wrap it.

import { XMLBuilder, XMLParser } from "npm:fast-xml-parser@5.12.1";
import { S3Error } from "./error.ts";

/** The namespace of every S3 answer. */
export const S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/";
/** The largest XML request body read (a DeleteObjects of 1000 long keys fits). */
export const MAX_XML_BODY_BYTES = 2 * 1024 * 1024;

const BUILDER = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  suppressEmptyNode: false,
  format: false,
});

const PARSER = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  // Keys may begin or end with spaces: text is kept as sent.
  trimValues: false,
  // Keys and part numbers stay text; lists of one element stay lists where S3 allows many.
  isArray: (name) => name === "Part" || name === "Object",
  processEntities: true,
});

/**
 * An XML document with `root` as its element in S3's namespace. Values may be strings, numbers,
 * booleans, nested objects, or arrays (repeated elements); undefined fields are left out.
 */
export function renderXml(root: string, body: Record<string, unknown>): string {
  const element = { "@_xmlns": S3_NAMESPACE, ...withoutUndefined(body) };
  return `<?xml version="1.0" encoding="UTF-8"?>\n` + BUILDER.build({ [root]: element });
}

function withoutUndefined(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) {
    if (field === undefined) continue;
    if (Array.isArray(field)) {
      out[name] = field.map((item) =>
        typeof item === "object" && item !== null
          ? withoutUndefined(item as Record<string, unknown>)
          : item
      );
    } else if (typeof field === "object" && field !== null) {
      out[name] = withoutUndefined(field as Record<string, unknown>);
    } else out[name] = field;
  }
  return out;
}

/** The S3 error document of `failure`, as S3 sends it (no namespace on `<Error>`). */
export function renderError(failure: S3Error, requestId: string): string {
  const error = {
    Code: failure.code,
    Message: failure.message,
    Resource: failure.resource,
    RequestId: requestId,
  };
  return `<?xml version="1.0" encoding="UTF-8"?>\n` +
    BUILDER.build({ Error: withoutUndefined(error) });
}

/** Parses an XML request body; throws an S3Error (MalformedXML) on text that is not XML. */
export function parseXml(text: string): Record<string, unknown> {
  try {
    const parsed = PARSER.parse(text, true);
    if (typeof parsed !== "object" || parsed === null) throw new Error("not an element");
    return parsed as Record<string, unknown>;
  } catch {
    throw new S3Error(
      400,
      "MalformedXML",
      "The XML you provided was not well-formed or did not validate against our published schema",
    );
  }
}

/** An XML answer. */
export function xmlResponse(
  root: string,
  body: Record<string, unknown>,
  options: { status?: number; headers?: Record<string, string> } = {},
): Response {
  return new Response(renderXml(root, body), {
    status: options.status ?? 200,
    headers: { "content-type": "application/xml", ...options.headers },
  });
}

/** An S3 error answer; HEAD answers carry no body, as S3's do. */
export function s3Error(failure: S3Error, options: { method?: string } = {}): Response {
  const requestId = crypto.randomUUID().replaceAll("-", "").slice(0, 16).toUpperCase();
  const headers = { "content-type": "application/xml", "x-amz-request-id": requestId };
  const body = options.method === "HEAD" ? null : renderError(failure, requestId);
  return new Response(body, { status: failure.status, headers });
}
