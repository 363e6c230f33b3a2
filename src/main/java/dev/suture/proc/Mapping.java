package dev.suture.proc;

/**
 * One line of /proc/PID/maps: the range [start, end), permissions ("r-xp"), file offset, device ("fd:01"), inode
 * and path (a file, "[heap]", "[stack]", "[vdso]", "" for anonymous memory; a replaced file ends in " (deleted)").
 */
public record Mapping(long start, long end, String perms, long offset, String device, long inode, String path) {

    public Mapping(long start, long end, String perms, long offset, String path) {
        this(start, end, perms, offset, "00:00", 0, path);
    }

    public long size() {
        return end - start;
    }

    public boolean contains(long address) {
        return Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, end) < 0;
    }

    public boolean readable() {
        return perms.length() > 0 && perms.charAt(0) == 'r';
    }

    public boolean writable() {
        return perms.length() > 1 && perms.charAt(1) == 'w';
    }

    public boolean executable() {
        return perms.length() > 2 && perms.charAt(2) == 'x';
    }

    /** Backed by a file (the path is absolute), deleted or not. */
    public boolean isFile() {
        return path.startsWith("/");
    }

    /** The file was deleted or replaced on disk since it was mapped. */
    public boolean isDeleted() {
        return path.endsWith(" (deleted)");
    }

    /** The path without the " (deleted)" mark. */
    public String filePath() {
        return isDeleted() ? path.substring(0, path.length() - " (deleted)".length()) : path;
    }

    /** The name of this range under /proc/PID/map_files, which opens the mapped file even when deleted. */
    public String mapFilesName() {
        return Long.toHexString(start) + "-" + Long.toHexString(end);
    }

    @Override
    public String toString() {
        return Long.toHexString(start) + "-" + Long.toHexString(end) + " " + perms + " " + Long.toHexString(offset)
                + " " + path;
    }
}
