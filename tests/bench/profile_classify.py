#!/usr/bin/env python3
"""Sort the samples of `perf script -F comm,ip,sym` into cost classes
(syscall by name, SQLite, copies, logging, IPC, anvil, process start and
exit, TLS library, other user code), per process name, and print a table
in percent of all samples and in microseconds of CPU per message.

    perf script -i perf.data -F comm,ip,sym | \\
        python3 profile_classify.py MESSAGES CPU_SECONDS
"""
import collections
import re
import signal
import sys

PROC_START = ("execve", "_dl_", "dl_main", "_start", "do_exit", "exit_mmap",
              "__x64_sys_exit_group", "_Fork", "copy_process", "kernel_clone",
              "__libc_start_main", "load_elf_binary", "init_cacheinfo",
              "OPENSSL_init", "ossl_init", "CONF_modules_load", "SSL_CTX_new",
              "do_wait", "wait4", "OPENSSL_cleanup", "__libc_start_call_main",
              "config_", "cfg_parse", "cfg_init")


def classify(stack):
    """stack: innermost first list of symbol names"""
    syms = " ".join(stack)
    # process creation / exec / exit / startup work
    for s in stack:
        if s.startswith(("__x64_sys_execve", "load_elf_binary", "__x64_sys_exit_group",
                         "do_exit", "kernel_clone", "__x64_sys_clone", "_dl_start",
                         "_dl_relocate_object", "dl_main", "_dl_map_object",
                         "__x64_sys_wait4", "_Fork", "exit_mmap")):
            return "process start/exit"
    if re.search(r"\bsqlite3", syms):
        return "SQLite"
    if re.search(r"\b(log_|vsyslog|__vfprintf_internal|vfprintf|__vsnprintf)", syms) and \
            re.search(r"\blog_(info|warn|debug|err|msg|write)", syms):
        return "logging"
    if re.search(r"\b(anvil_)", syms):
        return "anvil round trips"
    if re.search(r"\b(ipc_|channel_|msg_)", syms) and "sqlite" not in syms:
        base = "IPC"
    else:
        base = None
    for s in stack:
        m = re.match(r"__(?:x64|se)_sys_(\w+)", s)
        if m:
            name = m.group(1)
            if name in ("pwrite64", "fdatasync", "fsync"):
                return "SQLite"
            return "syscall " + name
        if s in ("asm_exc_page_fault",):
            return "page faults"
    if base:
        return base
    if "entry_SYSCALL_64_after_hwframe" in stack:
        # the kernel frames stop short of the syscall: name it by the
        # C library wrapper that made it
        i = stack.index("entry_SYSCALL_64_after_hwframe")
        if i + 1 < len(stack):
            w = re.sub(r"^(__GI___libc_|__libc_|__GI___|__)", "", stack[i + 1])
            w = w.split("@")[0]
            if w in ("pwrite", "fdatasync", "fsync"):
                return "SQLite"
            return "syscall " + w
    if re.search(r"\b(memcpy|__memmove|__memcpy|memmove)", stack[0] if stack else ""):
        return "copies"
    if re.search(r"\b(malloc|_int_malloc|free|_int_free|calloc|realloc|sysmalloc|cfree)", " ".join(stack[:2])):
        return "malloc/free"
    if re.search(r"\b(OPENSSL|SSL_|EVP_|CRYPTO_|ossl_|pthread_rwlock)", syms):
        return "OpenSSL"
    return "other user code"


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    msgs = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    cpu = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    counts = collections.Counter()
    total = 0
    comm, stack = None, []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                counts[(comm, classify(stack))] += 1
                total += 1
            comm, stack = None, []
            continue
        if not line.startswith(("\t", " ")):
            comm, stack = line.split()[0], []
        else:
            parts = line.split(None, 1)
            stack.append(parts[1].split("+")[0] if len(parts) > 1 else "?")
    if comm is not None:
        counts[(comm, classify(stack))] += 1
        total += 1
    by_class = collections.Counter()
    for (c, k), n in counts.items():
        by_class[k] += n
    per_msg = (cpu * 1e6 / msgs) if msgs and cpu else 0
    print("| cost | share | us CPU/msg |")
    print("|---|---|---|")
    for k, n in by_class.most_common():
        print("| %s | %.1f%% | %s |" % (k, 100.0 * n / total,
              "%.0f" % (per_msg * n / total) if per_msg else "-"))
    print()
    print("| process | cost | share |")
    print("|---|---|---|")
    for (c, k), n in counts.most_common(40):
        print("| %s | %s | %.1f%% |" % (c, k, 100.0 * n / total))


if __name__ == "__main__":
    main()
