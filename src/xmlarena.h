/*
 * xmlarena.h - where expat keeps a parser's memory.
 *
 * Each parser gets a slot of its own: 64 KiB of address space, of which only
 * the pages it touches cost memory. Its allocations are carved from the slot
 * (the rare one that does not fit goes to malloc), and when the parser is freed
 * the slot's pages go back to the kernel at once (MADV_DONTNEED). With malloc,
 * a freed parser left holes between the other allocations of its stream that
 * the process kept: freeing an idle stream's parser (xmlstream_compact) gave
 * nothing back. Slots come from 1 MiB slabs, so the number of mappings stays
 * small.
 *
 * expat's memory functions take no context, so the parser being worked on is
 * "current" (xmlarena_enter) around every expat call that may allocate.
 */
#ifndef PARLEY_XMLARENA_H
#define PARLEY_XMLARENA_H

#include <expat.h>

/* A new parser (XML_ParserCreateNS) in a slot of its own, or NULL. */
XML_Parser xmlarena_parser_new(const XML_Char *encoding, XML_Char sep);
/* Frees the parser and gives its slot's pages back. */
void xmlarena_parser_free(XML_Parser p);
/* Makes p's slot current for the expat calls that follow; returns the previous
 * one for xmlarena_leave. */
void *xmlarena_enter(XML_Parser p);
void xmlarena_leave(void *previous);

#endif
