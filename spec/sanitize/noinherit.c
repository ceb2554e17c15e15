/* Preloaded after the ASan runtime into the lua5.4 that runs the busted suite
 * (`make sanitize`): once the dynamic loader has used LD_PRELOAD, drop it from
 * the environment, so the processes the specs start (node servers, sh,
 * openssl, luarocks, other lua5.4s, the embedding examples) run as usual
 * instead of inheriting the sanitizer runtime. */
#include <stdlib.h>

__attribute__((constructor)) static void sa_drop_preload(void)
{
    unsetenv("LD_PRELOAD");
}
