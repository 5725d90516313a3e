/*
 * LD_PRELOAD shim for benchmarking Janus on a loopback-only setup.
 *
 * Janus (via libnice and its own interface scan) skips interfaces flagged
 * IFF_LOOPBACK when it gathers ICE candidates, so with only 127.0.0.1 to
 * offer it silently falls back to other addresses. This wraps getifaddrs()
 * and clears IFF_LOOPBACK on every entry it returns, so `lo` looks like an
 * ordinary interface and Janus offers 127.0.0.1 host candidates.
 *
 * Build: cc -shared -fPIC -O2 -o lo_shim.so lo_shim.c -ldl
 * Use:   LD_PRELOAD=/path/to/lo_shim.so janus ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

int getifaddrs(struct ifaddrs **ifap) {
    static int (*real)(struct ifaddrs **) = NULL;
    if (real == NULL) {
        real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
        if (real == NULL)
            return -1;
    }
    int rc = real(ifap);
    if (rc == 0 && ifap != NULL) {
        for (struct ifaddrs *i = *ifap; i != NULL; i = i->ifa_next)
            i->ifa_flags &= ~IFF_LOOPBACK;
    }
    return rc;
}
