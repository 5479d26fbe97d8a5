/*
 * The provider registry: only this file lists the provider types (as curl's
 * vtls.c lists its TLS backends). It is apart from the wrappers in
 * src/provider.c so that rekey-guard, which carries only `local` and has its
 * own registry in src/guard_bin.c, links the wrappers without Vault and curl.
 */
#include <string.h>

#include "rekey/provider.h"

extern const struct rk_provider_ops rk_provider_local;
extern const struct rk_provider_ops rk_provider_vault;
extern const struct rk_provider_ops rk_provider_aws;
extern const struct rk_provider_ops rk_provider_kubernetes;

static const struct rk_provider_ops *const providers[] = {
	&rk_provider_local,
	&rk_provider_vault,
	&rk_provider_aws,
	&rk_provider_kubernetes,
	NULL,
};

const struct rk_provider_ops *
rk_provider_find_type(const char *type)
{
	for (size_t i = 0; providers[i]; i++)
		if (strcmp(providers[i]->type, type) == 0)
			return providers[i];
	return NULL;
}

const struct rk_provider_ops *const *
rk_provider_types(void)
{
	return providers;
}
