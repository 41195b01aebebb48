/*
 * fuzz_bosh.c - libFuzzer target: any bytes through bosh_body_parse(), the
 * parser and checker of BOSH request bodies (src/bosh_body.c), with small
 * limits so that they are often hit. A body that comes out must hold what
 * bosh_body.h promises: a {httpbind}body root with a rid in 1..2^53-1, no
 * payload left in the httpbind namespace, no element deeper or with more
 * attributes than the limits, numbers in their ranges; and it must serialize.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bosh_body.h"

static const struct bosh_body_limits lim = { .max_bytes = 2048, .max_depth = 4,
					     .max_attrs = 8 };

/* Walks the tree without recursion: the depth of each payload, the namespaces
 * and attribute counts. */
static void check_tree(const struct xml_node *root)
{
	const struct xml_node *n = root->children;
	unsigned depth = 1;

	while (n) {
		if (n->type == XML_ELEMENT) {
			if (depth > lim.max_depth || n->nattrs > lim.max_attrs ||
			    (n->ns && strcmp(n->ns, NS_HTTPBIND) == 0))
				abort();
			if (n->children) {
				n = n->children;
				depth++;
				continue;
			}
		} else if (n->parent == root) {
			/* only whitespace directly inside the wrapper */
			for (size_t i = 0; i < n->text_len; i++)
				if (!strchr(" \t\r\n", n->text[i]))
					abort();
		}
		while (n && !n->next && n != root) {
			n = n->parent;
			depth--;
		}
		if (!n || n == root)
			break;
		n = n->next;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bosh_body b;
	const char *why = NULL;
	char *s;

	if (bosh_body_parse((const char *)data, size, &lim, &b, &why) < 0) {
		if (!why || b.root)
			abort();
		return 0;
	}
	if (!b.root || strcmp(b.root->name, "body") != 0 || !b.root->ns ||
	    strcmp(b.root->ns, NS_HTTPBIND) != 0 || b.root->nattrs > lim.max_attrs ||
	    b.rid < 1 || b.rid > BOSH_RID_MAX || b.ack > (long long)BOSH_RID_MAX ||
	    (b.ver_major < 0) != (b.ver_minor < 0) || b.wait < -1 || b.hold < -1 ||
	    b.pause < -1 || (b.sid && !*b.sid))
		abort();
	check_tree(b.root);
	s = xml_to_string(b.root, NULL);
	free(s);
	bosh_body_free(&b);
	return 0;
}
