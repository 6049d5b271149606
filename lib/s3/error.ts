// The one error type of the S3 API: S3's error code (`NoSuchKey`), the HTTP status it is answered
// with, and a short message. The protocol layer (SigV4, aws-chunked bodies, checksums) throws it
// too, so that a stream that fails mid-body tells the handler what to answer. Pure.

/** An S3 error: `status` and `code` are what S3 answers with. */
export class S3Error extends Error {
  override name = "S3Error";
  readonly status: number;
  readonly code: string;
  /** The bucket or key the request named, shown as `<Resource>`. */
  readonly resource?: string;

  constructor(status: number, code: string, message: string, resource?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.resource = resource;
  }
}
