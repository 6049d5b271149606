// The index core as the S3 handlers see it: the one place lib/s3 names it, so that the handlers
// take the data model (records, writes, locates, volumes) and never the HTTP server.

export type { IndexServer as Core, Located, WriteResult } from "../http/server.ts";
