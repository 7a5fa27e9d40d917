// The store's own error: the storage folder cannot be used at all (startup, or a fault the HTTP
// layer reports as 503). Per-request faults become MirrorError("UNAVAILABLE") where they are caught.
import { MirrorKitError, type MirrorKitErrorOptions } from "../errors.js";

export class StoreError extends MirrorKitError {
  override readonly name = "StoreError";
  declare readonly code: "MK_STORE_UNUSABLE";
  constructor(
    message: string,
    /** The errno code behind it (EACCES, EROFS, ENOSPC, EIO, ...), when there is one. */
    readonly errno?: string,
    options?: MirrorKitErrorOptions,
  ) {
    super("MK_STORE_UNUSABLE", message, options);
  }
}
