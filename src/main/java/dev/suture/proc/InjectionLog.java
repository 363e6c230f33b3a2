package dev.suture.proc;

/**
 * Told, before anything of an injected system call reaches the target, everything needed to undo it should
 * suture die meanwhile: the stub written into never-executed bytes, and each thread borrowed to run it with that
 * thread's registers. The live layer's journal implements it (each record is in the page cache before the call
 * returns).
 */
public interface InjectionLog {
    InjectionLog NONE = new InjectionLog() {
        @Override
        public void stub(long address, byte[] original, byte[] code) {}

        @Override
        public void borrowing(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] registers) {}

        @Override
        public void returned(int tid) {}

        @Override
        public void unstub(long address) {}
    };

    /** {@code code} is about to be written at {@code address} over {@code original} (padding no code runs). */
    void stub(long address, byte[] original, byte[] code);

    /**
     * Thread {@code tid} is about to run {@code stubCode} written at {@code stub} over {@code stubOriginal};
     * {@code registers} are its own (user_regs_struct order, see {@link Registers}).
     */
    void borrowing(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] registers);

    /** The thread has its registers back. */
    void returned(int tid);

    /** The stub at {@code address} has its original bytes back. */
    void unstub(long address);
}
