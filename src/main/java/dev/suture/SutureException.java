package dev.suture;

/**
 * Base of every failure suture explains to a person. Each layer throws its own subclasses (a malformed ELF file,
 * a vanished process, ...) and names the {@link Kind}; the CLI turns the kind into the documented exit code.
 * The message says what, where and what to do next.
 */
public class SutureException extends RuntimeException {

    /** What sort of failure this is, independent of any command line. */
    public enum Kind {
        /** Bad usage or bad input: a missing or malformed file, a bad argument. */
        BAD_INPUT,
        /** The patch does not fit the target: no module with that build-id, bytes differ, unsupported relocation. */
        DOES_NOT_FIT,
        /** A function to be replaced stayed busy, or no window kept its budget (--max-pause), past the timeout. */
        UNSAFE,
        /** The kernel refused: ptrace denied, another tracer, missing capability. */
        NOT_PERMITTED,
        /** The target process (or the thread needed) is gone. */
        VANISHED,
        /** A bug or an unexpected state of suture itself. */
        INTERNAL
    }

    private final Kind kind;

    public SutureException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public SutureException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
