const char *fmt_name(const char *name) {
    return name ? name : "world";
}
