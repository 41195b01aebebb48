/*
 * xmlarena.c - a slot of address space per expat parser (see xmlarena.h).
 *
 * A slot starts with its header; allocations follow, each after a size word,
 * bump-allocated. free() of the last allocation gives its room back, others
 * wait for the parser's end; realloc() of the last one grows in place. expat
 * allocates little once a parser has warmed up (it keeps free lists of its
 * own), and what does not fit in the slot falls back to malloc, so a slot
 * never grows past its size.
 */
#include "xmlarena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOT (64u << 10)
#define SLOTS_PER_SLAB 16
#define ALIGN 16

struct slot {
	size_t used;		/* bytes from the start of the slot, header included */
	size_t last;		/* offset of the last allocation's size word, 0: none */
};

static struct slot *cur;
static struct slot **free_slots;
static size_t nfree, cap_free;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PARLEY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(PARLEY_ASAN)
#define ARENA_OFF 1	/* let the sanitizer see every allocation */
#else
#define ARENA_OFF 0
#endif

static bool in_slot(const struct slot *s, const void *p)
{
	return s && (const char *)p > (const char *)s && (const char *)p < (const char *)s + SLOT;
}

static struct slot *slot_of(const void *p)
{
	return (struct slot *)((uintptr_t)p & ~(uintptr_t)(SLOT - 1));
}

/* A slab of slots aligned to SLOT, so a slot is found from any address in it. */
static int new_slab(void)
{
	size_t len = (size_t)SLOT * (SLOTS_PER_SLAB + 1);
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t start, end;

	if (m == MAP_FAILED)
		return -1;
	start = ((uintptr_t)m + SLOT - 1) & ~(uintptr_t)(SLOT - 1);
	end = start + (size_t)SLOT * SLOTS_PER_SLAB;
	if (start > (uintptr_t)m)
		munmap(m, start - (uintptr_t)m);
	if ((uintptr_t)m + len > end)
		munmap((void *)end, (uintptr_t)m + len - end);
	if (nfree + SLOTS_PER_SLAB > cap_free) {
		size_t n = cap_free ? cap_free * 2 : 64;
		struct slot **f;

		while (n < nfree + SLOTS_PER_SLAB)
			n *= 2;
		f = realloc(free_slots, n * sizeof(*f));
		if (!f) {
			munmap((void *)start, end - start);
			return -1;
		}
		free_slots = f;
		cap_free = n;
	}
	for (int i = SLOTS_PER_SLAB - 1; i >= 0; i--)
		free_slots[nfree++] = (struct slot *)(start + (size_t)i * SLOT);
	return 0;
}

static struct slot *slot_get(void)
{
	struct slot *s;

	if (!nfree && new_slab() < 0)
		return NULL;
	s = free_slots[--nfree];
	s->used = (sizeof(*s) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	s->last = 0;
	return s;
}

static void slot_put(struct slot *s)
{
	/* The pages go back now; the address range stays ours for the next. */
	madvise(s, SLOT, MADV_DONTNEED);
	if (nfree < cap_free)
		free_slots[nfree++] = s;
	/* else: cannot happen, every slot came from a slab that made room */
}

static void *a_malloc(size_t size)
{
	size_t need = ALIGN + ((size + ALIGN - 1) & ~(size_t)(ALIGN - 1));
	char *p;

	if (!cur || size > SLOT || cur->used + need > SLOT)
		return malloc(size);
	p = (char *)cur + cur->used;
	*(size_t *)p = size;
	cur->last = cur->used;
	cur->used += need;
	return p + ALIGN;
}

static void a_free(void *ptr)
{
	if (!ptr)
		return;
	if (!in_slot(cur, ptr)) {
		free(ptr);
		return;
	}
	/* Only the last allocation's room can be reused before the parser ends. */
	if (cur->last && (char *)ptr == (char *)cur + cur->last + ALIGN) {
		cur->used = cur->last;
		cur->last = 0;
	}
}

static void *a_realloc(void *ptr, size_t size)
{
	size_t old, need;
	void *n;

	if (!ptr)
		return a_malloc(size);
	if (!in_slot(cur, ptr))
		return realloc(ptr, size);
	old = *(size_t *)((char *)ptr - ALIGN);
	need = ALIGN + ((size + ALIGN - 1) & ~(size_t)(ALIGN - 1));
	if (cur->last && (char *)ptr == (char *)cur + cur->last + ALIGN &&
	    cur->last + need <= SLOT) {
		*(size_t *)((char *)ptr - ALIGN) = size;
		cur->used = cur->last + need;
		return ptr;
	}
	n = a_malloc(size);
	if (n) {
		memcpy(n, ptr, old < size ? old : size);
		a_free(ptr);
	}
	return n;
}

static const XML_Memory_Handling_Suite suite = { a_malloc, a_realloc, a_free };

XML_Parser xmlarena_parser_new(const XML_Char *encoding, XML_Char sep)
{
	struct slot *prev = cur, *s;
	XML_Parser p;

	if (ARENA_OFF)
		return XML_ParserCreateNS(encoding, sep);
	s = slot_get();
	if (!s)
		return NULL;
	cur = s;
	/* The parser's own struct is its first allocation: always in the slot. */
	p = XML_ParserCreate_MM(encoding, &suite, &sep);
	cur = prev;
	if (!p)
		slot_put(s);
	return p;
}

void xmlarena_parser_free(XML_Parser p)
{
	struct slot *prev = cur, *s;

	if (!p)
		return;
	if (ARENA_OFF) {
		XML_ParserFree(p);
		return;
	}
	s = slot_of(p);
	cur = s;
	XML_ParserFree(p);
	cur = prev == s ? NULL : prev;
	slot_put(s);
}

void *xmlarena_enter(XML_Parser p)
{
	struct slot *prev = cur;

	cur = ARENA_OFF || !p ? NULL : slot_of(p);
	return prev;
}

void xmlarena_leave(void *previous)
{
	cur = previous;
}
