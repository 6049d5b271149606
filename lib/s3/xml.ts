// S3's XML, built and parsed with fast-xml-parser: the bodies of answers (listings, multipart,
// errors) and of the requests that carry one (CompleteMultipartUpload, DeleteObjects). Text is
// escaped by the library, never by hand. A request body's character references are decoded here,
// in one pass: the five named entities and numeric references, as Go's encoding/xml (`&#34;`),
// botocore and the JavaScript SDK (`&#x0D;`) write them; a DTD or any other entity is refused, so
// no request can define or expand entities. Pure, but for `xmlResponse`/`s3Error`, which wrap it.

import { XMLBuilder, XMLParser } from "npm:fast-xml-parser@5.12.1";
import { S3Error } from "./error.ts";

/** The namespace of every S3 answer. */
const S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/";
/** The largest XML request body read (a DeleteObjects of 1000 long keys fits). */
export const MAX_XML_BODY_BYTES = 2 * 1024 * 1024;
/** The owner (and initiator) every listing names: there are no users beyond access keys. */
export const OWNER = { ID: "mkv", DisplayName: "mkv" };
/** The one storage class of every object and part. */
export const STORAGE_CLASS = "STANDARD";
/** What every XML document S3 sends starts with. */
export const XML_DECLARATION = `<?xml version="1.0" encoding="UTF-8"?>\n`;

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
  // References are decoded by `decodeReferences`, which knows numeric ones and refuses the rest.
  processEntities: false,
});

/** What the five entities of XML stand for. */
const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** An ampersand and what may follow it up to its semicolon (or the ampersand alone). */
const REFERENCE = /&(#x[0-9a-fA-F]{1,6};|#[0-9]{1,7};|[A-Za-z][A-Za-z0-9]{0,7};)?/g;

/**
 * An XML document with `root` as its element in S3's namespace. Values may be strings, numbers,
 * booleans, nested objects, or arrays (repeated elements); undefined fields are left out.
 */
export function renderXml(root: string, body: Record<string, unknown>): string {
  const element = { "@_xmlns": S3_NAMESPACE, ...withoutUndefined(body) };
  return XML_DECLARATION + BUILDER.build({ [root]: element });
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
  return XML_DECLARATION +
    BUILDER.build({ Error: withoutUndefined(error) });
}

/** S3's answer to a request body that is not the XML it expects. */
export function malformedXml(): S3Error {
  return new S3Error(
    400,
    "MalformedXML",
    "The XML you provided was not well-formed or did not validate against our published schema",
  );
}

/**
 * The text with its character references replaced by what they stand for, in one pass (so
 * `&amp;#39;` is `&#39;`); null if it holds a bare `&`, an unknown entity, or a reference to a
 * character XML does not allow.
 */
export function decodeReferences(text: string): string | null {
  if (!text.includes("&")) return text;
  let bad = false;
  const decoded = text.replace(REFERENCE, (_, body: string | undefined) => {
    const name = body?.slice(0, -1);
    const char = name === undefined ? undefined : name.startsWith("#")
      ? characterOf(
        name[1] === "x" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10),
      )
      : NAMED_ENTITIES[name];
    if (char === undefined) bad = true;
    return char ?? "";
  });
  return bad ? null : decoded;
}

/** The character of a code point that XML 1.0 allows in a document; undefined otherwise. */
function characterOf(code: number): string | undefined {
  const allowed = code === 0x9 || code === 0xa || code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff);
  return allowed ? String.fromCodePoint(code) : undefined;
}

/** Every string of a parsed document decoded; throws MalformedXML where one cannot be. */
function decodeTree(value: unknown): unknown {
  if (typeof value === "string") {
    const decoded = decodeReferences(value);
    if (decoded === null) throw malformedXml();
    return decoded;
  }
  if (Array.isArray(value)) return value.map(decodeTree);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(value)) out[name] = decodeTree(field);
    return out;
  }
  return value;
}

/**
 * Parses an XML request body; throws an S3Error (MalformedXML) on text that is not XML, and on a
 * document type declaration (S3's bodies have none; it could define entities).
 */
export function parseXml(text: string): Record<string, unknown> {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw malformedXml();
  let parsed: unknown;
  try {
    parsed = PARSER.parse(text, true);
  } catch {
    throw malformedXml();
  }
  if (typeof parsed !== "object" || parsed === null) throw malformedXml();
  return decodeTree(parsed) as Record<string, unknown>;
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

/** A new request ID, as S3's look: 16 upper-case hex digits. */
export function requestId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16).toUpperCase();
}

/** An S3 error answer; HEAD answers carry no body, as S3's do. */
export function s3Error(failure: S3Error, options: { method?: string } = {}): Response {
  const id = requestId();
  const headers = { "content-type": "application/xml", "x-amz-request-id": id };
  const body = options.method === "HEAD" ? null : renderError(failure, id);
  return new Response(body, { status: failure.status, headers });
}
