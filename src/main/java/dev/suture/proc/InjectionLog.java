package dev.suture.proc;

/**
 * Told, before a thread is borrowed to run a system call inside the target, everything needed to give it back
 * should suture die meanwhile: the thread, its registers, and the never-executed bytes the stub overwrites. The
 * live layer's journal implements it (and makes each record durable before returning).
 */
public interface InjectionLog {
    InjectionLog NONE = new InjectionLog() {
        @Override
        public void borrowing(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] registers) {}

        @Override
        public void returned(int tid) {}
    };

    /**
     * Thread {@code tid} is about to run {@code stubCode} written at {@code stub} over {@code stubOriginal};
     * {@code registers} are its own (user_regs_struct order, see {@link Registers}).
     */
    void borrowing(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] registers);

    /** The thread has its registers back and the stub's bytes are restored. */
    void returned(int tid);
}
