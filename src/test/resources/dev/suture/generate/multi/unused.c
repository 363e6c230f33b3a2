/* In libmath.a but referenced by nothing: no target takes it from the archive. */
int unused_twice(int a) { return 2 * a; }
