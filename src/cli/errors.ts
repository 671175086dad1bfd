/** A mistake the user can fix: printed as one line (no stack trace), exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
  }
}
