/*
 * Lookup of files compiled into the binary by tools/embed.sh.
 */
#include <string.h>

#include "rekey/embedded.h"

const struct rk_embedded_file *
rk_embedded_find(const char *path)
{
	for (const struct rk_embedded_file *f = rk_embedded_files; f->path; f++)
		if (strcmp(f->path, path) == 0)
			return f;
	return NULL;
}
