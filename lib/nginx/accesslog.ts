// What the access log holds and what never reaches any log: the JSON line nginx writes per request,
// and the secrets (signatures, credentials) whose values are redacted from the logged URL and
// from nginx's error lines alike (docs/monitoring.md, Access log). Pure.

/**
 * The query parameters whose values are secrets or credentials, never logged: SigV4's and SigV2's
 * signatures, access keys and session tokens (presigned URLs), and a volume's signature (`md5`).
 * A log that leaks them lets its reader replay the request until it expires.
 */
export const SECRET_PARAMS = [
  "X-Amz-Signature",
  "X-Amz-Credential",
  "X-Amz-Security-Token",
  "Signature",
  "AWSAccessKeyId",
  "md5",
];
/** What a secret parameter's value is logged as. */
const REDACTED = "REDACTED";
const SECRET_PARAM_VALUE = new RegExp(`([?&](?:${SECRET_PARAMS.join("|")})=)[^&\\s"]*`, "gi");

/**
 * The access log's line: one JSON object per request. The query string is in `uri` as sent but
 * for the values of SECRET_PARAMS (renderRedactedUri); the Authorization header and any other
 * header but the User-Agent are never logged.
 */
export const ACCESS_LOG_FORMAT = `{"time":"$time_iso8601","remote_addr":"$remote_addr",` +
  `"method":"$request_method","uri":"$mkv_logged_uri","status":$status,` +
  `"body_bytes_sent":$body_bytes_sent,"request_length":$request_length,` +
  `"request_time":$request_time,"upstream_response_time":"$upstream_response_time",` +
  `"user_agent":"$http_user_agent"}`;

/** `text` (a URL, or a log line holding one) with each secret parameter's value redacted. Pure. */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_PARAM_VALUE, `$1${REDACTED}`);
}

/**
 * `$mkv_logged_uri`: `$request_uri` with the value of each of SECRET_PARAMS replaced, one map
 * per parameter (nginx has no replace-all), evaluated only when a line is logged.
 */
export function renderRedactedUri(): string[] {
  const lines: string[] = [];
  let from = "$request_uri";
  SECRET_PARAMS.forEach((param, i) => {
    const to = i === SECRET_PARAMS.length - 1 ? "$mkv_logged_uri" : `$mkv_logged_uri_${i}`;
    lines.push(
      `  map ${from} ${to} {`,
      `    "~*^(?<mkv_before_${i}>.*[?&]${param}=)[^&]*(?<mkv_after_${i}>.*)$" ` +
        `"\${mkv_before_${i}}${REDACTED}\${mkv_after_${i}}";`,
      `    default ${from};`,
      `  }`,
    );
    from = to;
  });
  return lines;
}
