// SPDX-License-Identifier: MIT
#include "codec/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bitmap.h"
#include "codec/ring.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name
#define ULL(x) ((unsigned long long)(x))

const ProtobufCMessageDescriptor *pt_msg_descriptor(uint16_t type)
{
	switch (type) {
	case T(HELLO):
		return &ptrack__v1__hello__descriptor;
	case T(DIRTY_BITMAP):
		return &ptrack__v1__dirty_bitmap__descriptor;
	case T(DIRTY_RING):
		return &ptrack__v1__dirty_ring__descriptor;
	case T(PAGE_DATA):
		return &ptrack__v1__page_data__descriptor;
	case T(ITERATION_DONE):
		return &ptrack__v1__iteration_done__descriptor;
	case T(ACK):
		return &ptrack__v1__ack__descriptor;
	case T(RESUME):
		return &ptrack__v1__resume__descriptor;
	case T(COMPLETE):
		return &ptrack__v1__complete__descriptor;
	case T(ERROR):
		return &ptrack__v1__error__descriptor;
	case T(VMM_STATE):
		return &ptrack__v1__vmm_state__descriptor;
	case T(RESUMED):
		return &ptrack__v1__resumed__descriptor;
	default:
		return NULL;
	}
}

static int has_payload(uint16_t type)
{
	return type == T(DIRTY_BITMAP) || type == T(DIRTY_RING) ||
	       type == T(PAGE_DATA) || type == T(VMM_STATE);
}

static int needs_layout(uint16_t type)
{
	return type != T(HELLO) && type != T(RESUME) && type != T(ACK) &&
	       type != T(ERROR) && type != T(RESUMED);
}

static int find_region(const struct pt_layout *l, uint32_t id,
		       const struct pt_region **out, struct pt_error *e)
{
	*out = pt_layout_find(l, id);
	if (!*out)
		return pt_error_set(e, E(BAD_REGION), EBADMSG,
				    "region %u is not in the layout", id);
	return 0;
}

static int check_range(const struct pt_region *r, uint64_t first,
		       uint64_t count, uint64_t max, struct pt_error *e)
{
	if (!count || count > max)
		return pt_error_set(
			e, count ? E(OVERSIZE) : E(BAD_MESSAGE), EBADMSG,
			"%llu pages in one frame, 1 to %llu allowed",
			ULL(count), ULL(max));
	if (first >= r->npages || count > r->npages - first)
		return pt_error_set(
			e, E(PAGE_RANGE), EBADMSG,
			"pages %llu+%llu outside region %u of %llu pages",
			ULL(first), ULL(count), r->id, ULL(r->npages));
	return 0;
}

static int check_hello(struct pt_msg *m, struct pt_error *e)
{
	const Ptrack__V1__Hello *h = m->u.hello;
	struct pt_layout l;

	if (h->version != PT_PROTO_VERSION)
		return pt_error_set(
			e, E(BAD_VERSION), EPROTONOSUPPORT,
			"Hello for protocol version %u, this side speaks %d",
			h->version, PT_PROTO_VERSION);
	if (h->role != PTRACK__V1__ROLE__ROLE_SOURCE &&
	    h->role != PTRACK__V1__ROLE__ROLE_PEER)
		return pt_error_set(e, E(BAD_MESSAGE), EBADMSG,
				    "Hello with unknown role %d", h->role);
	if (h->vm_uuid.len != 16 || strlen(h->vm_name) > 255)
		return pt_error_set(
			e, E(BAD_MESSAGE), EBADMSG,
			"Hello needs a 16-byte UUID (got %zu) and a name of at most 255 bytes",
			h->vm_uuid.len);
	if (!h->vcpus || h->vcpus > 4096)
		return pt_error_set(e, E(BAD_MESSAGE), EBADMSG,
				    "Hello with %u vCPUs", h->vcpus);
	if (h->dirty_source < PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP ||
	    h->dirty_source > PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING)
		return pt_error_set(e, E(BAD_MESSAGE), EBADMSG,
				    "Hello with unknown dirty source %d",
				    h->dirty_source);
	return pt_layout_from_hello(&l, h, e) ? -EBADMSG : 0;
}

static int check_bitmap(struct pt_msg *m, const struct pt_layout *l,
			struct pt_error *e)
{
	const Ptrack__V1__DirtyBitmap *b = m->u.bitmap;
	int r = find_region(l, b->region, &m->region, e);

	if (!r)
		r = check_range(m->region, b->first_page, b->page_count,
				PT_BITMAP_MAX_PAGES, e);
	if (r)
		return r;
	m->words = malloc(pt_bitmap_words(b->page_count) * 8 + 8);
	if (!m->words)
		return pt_error_set(e, E(INTERNAL), ENOMEM, "out of memory");
	return pt_bitmap_decode(b->encoding, m->payload, m->payload_len,
				b->page_count, b->dirty_count, m->words, e);
}

static int check_ring(struct pt_msg *m, const struct pt_layout *l,
		      struct pt_error *e)
{
	const Ptrack__V1__DirtyRing *rg = m->u.ring;
	uint64_t i;
	int r;

	if (rg->count > PT_RING_MAX_GFNS || rg->count > m->payload_len)
		return pt_error_set(e, E(OVERSIZE), EBADMSG,
				    "ring batch of %llu GFNs in %zu bytes",
				    ULL(rg->count), m->payload_len);
	m->gfns = malloc((rg->count ? rg->count : 1) * sizeof(uint64_t));
	if (!m->gfns)
		return pt_error_set(e, E(INTERNAL), ENOMEM, "out of memory");
	r = pt_ring_decode(m->payload, m->payload_len, rg->count, m->gfns, e);
	if (r)
		return r;
	for (i = 0; i < rg->count; i++)
		if (m->gfns[i] > UINT64_MAX >> PT_GFN_SHIFT ||
		    !pt_layout_find_gpa(l, m->gfns[i] << PT_GFN_SHIFT))
			return pt_error_set(e, E(PAGE_RANGE), EBADMSG,
					    "GFN 0x%llx is in no region",
					    ULL(m->gfns[i]));
	return 0;
}

static int check_page_list(struct pt_msg *m, struct pt_error *e)
{
	const Ptrack__V1__PageData *p = m->u.pages;
	size_t i;

	if (p->first_page || p->page_count)
		return pt_error_set(
			e, E(BAD_MESSAGE), EBADMSG,
			"PageData has both a page list and a range");
	if (p->n_pages > PT_PAGEDATA_MAX_PAGES)
		return pt_error_set(e, E(OVERSIZE), EBADMSG,
				    "%zu pages in one frame, at most %d",
				    p->n_pages, PT_PAGEDATA_MAX_PAGES);
	for (i = 0; i < p->n_pages; i++) {
		if (p->pages[i] >= m->region->npages)
			return pt_error_set(e, E(PAGE_RANGE), EBADMSG,
					    "page %llu outside region %u",
					    ULL(p->pages[i]), m->region->id);
		if (i && p->pages[i] <= p->pages[i - 1])
			return pt_error_set(
				e, E(ORDER), EBADMSG,
				"page list not strictly increasing at %zu", i);
	}
	m->page_idx = p->pages;
	m->n_pages = p->n_pages;
	return 0;
}

static int check_zero_mask(struct pt_msg *m, uint64_t *zeros,
			   struct pt_error *e)
{
	const Ptrack__V1__PageData *p = m->u.pages;
	size_t words = (size_t)((m->n_pages + 63) / 64);

	*zeros = 0;
	if (!p->n_zero_mask)
		return 0;
	if (p->n_zero_mask != words ||
	    (m->n_pages % 64 && p->zero_mask[words - 1] >> (m->n_pages % 64)))
		return pt_error_set(e, E(BAD_MESSAGE), EBADMSG,
				    "zero mask of %zu words for %llu pages",
				    p->n_zero_mask, ULL(m->n_pages));
	*zeros = pt_bitmap_count(p->zero_mask, words);
	return 0;
}

static int check_pages(struct pt_msg *m, const struct pt_layout *l,
		       struct pt_error *e)
{
	const Ptrack__V1__PageData *p = m->u.pages;
	uint64_t zeros;
	int r = find_region(l, p->region, &m->region, e);

	if (r)
		return r;
	if (p->n_pages) {
		r = check_page_list(m, e);
	} else {
		r = check_range(m->region, p->first_page, p->page_count,
				PT_PAGEDATA_MAX_PAGES, e);
		m->n_pages = p->page_count;
	}
	if (!r)
		r = check_zero_mask(m, &zeros, e);
	if (r)
		return r;
	if (m->payload_len != (m->n_pages - zeros) * m->region->page_size)
		return pt_error_set(
			e, E(BAD_PAYLOAD), EBADMSG,
			"%zu payload bytes for %llu non-zero pages of %u bytes",
			m->payload_len, ULL(m->n_pages - zeros),
			m->region->page_size);
	return 0;
}

static int check_complete(struct pt_msg *m, const struct pt_layout *l,
			  struct pt_error *e)
{
	const Ptrack__V1__Complete *c = m->u.complete;
	const struct pt_region *r;
	size_t i, j;

	for (i = 0; i < c->n_checksums; i++) {
		if (find_region(l, c->checksums[i]->region, &r, e))
			return -EBADMSG;
		for (j = 0; j < i; j++)
			if (c->checksums[j]->region == c->checksums[i]->region)
				return pt_error_set(
					e, E(BAD_MESSAGE), EBADMSG,
					"Complete names region %u twice",
					r->id);
	}
	return 0;
}

/* A chunk in bounds, its payload exactly the chunk plus zero padding. */
static int check_state(struct pt_msg *m, struct pt_error *e)
{
	const Ptrack__V1__VmmState *st = m->u.state;
	size_t i;

	if (!st->total || st->total > PT_STATE_MAX || !st->length ||
	    st->length > PT_STATE_CHUNK_MAX || st->offset >= st->total ||
	    st->length > st->total - st->offset)
		return pt_error_set(
			e, E(OVERSIZE), EBADMSG,
			"VMM state chunk %llu+%llu of %llu bytes (at most %u, chunks of %u)",
			ULL(st->offset), ULL(st->length), ULL(st->total),
			PT_STATE_MAX, PT_STATE_CHUNK_MAX);
	if (m->payload_len != pt_align8(st->length))
		return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
				    "%zu payload bytes for a %llu byte chunk",
				    m->payload_len, ULL(st->length));
	for (i = st->length; i < m->payload_len; i++)
		if (m->payload[i])
			return pt_error_set(e, E(BAD_PAYLOAD), EBADMSG,
					    "non-zero padding after the chunk");
	return 0;
}

static int check_msg(struct pt_msg *m, const struct pt_layout *l,
		     struct pt_error *e)
{
	switch (m->type) {
	case T(HELLO):
		return check_hello(m, e);
	case T(DIRTY_BITMAP):
		return check_bitmap(m, l, e);
	case T(DIRTY_RING):
		return check_ring(m, l, e);
	case T(PAGE_DATA):
		return check_pages(m, l, e);
	case T(RESUME):
		if (!m->u.resume->session_id)
			return pt_error_set(e, E(SESSION), EPROTO,
					    "Resume without a session id");
		return 0;
	case T(COMPLETE):
		return check_complete(m, l, e);
	case T(VMM_STATE):
		return check_state(m, e);
	case T(ERROR):
		if (strlen(m->u.error->text) > PT_TEXT_MAX)
			return pt_error_set(e, E(BAD_MESSAGE), EBADMSG,
					    "Error text longer than %d bytes",
					    PT_TEXT_MAX);
		return 0;
	default:
		return 0;
	}
}

int pt_msg_decode(const struct pt_frame *f, const struct pt_layout *layout,
		  struct pt_msg *m, struct pt_error *e)
{
	const ProtobufCMessageDescriptor *d = pt_msg_descriptor(f->hdr.type);
	int r;

	memset(m, 0, sizeof(*m));
	if (!d)
		return pt_error_set(e, E(UNKNOWN_TYPE), EBADMSG,
				    "unknown message type %u", f->hdr.type);
	if (!layout && needs_layout(f->hdr.type))
		return pt_error_set(e, E(SESSION), EPROTO,
				    "message type %u before Hello",
				    f->hdr.type);
	if (!has_payload(f->hdr.type) && f->hdr.payload_len)
		return pt_error_set(
			e, E(BAD_PAYLOAD), EBADMSG,
			"message type %u carries no payload, got %u bytes",
			f->hdr.type, f->hdr.payload_len);
	m->type = f->hdr.type;
	m->seq = f->hdr.seq;
	m->flags = f->hdr.flags;
	m->payload = f->payload;
	m->payload_len = f->hdr.payload_len;
	m->u.base = protobuf_c_message_unpack(d, NULL, f->hdr.msg_len, f->msg);
	if (!m->u.base)
		return pt_error_set(e, E(BAD_MESSAGE), EBADMSG,
				    "%s does not unpack", d->short_name);
	r = check_msg(m, layout, e);
	if (r)
		pt_msg_release(m);
	return r;
}

void pt_msg_release(struct pt_msg *m)
{
	if (m->u.base)
		protobuf_c_message_free_unpacked(m->u.base, NULL);
	free(m->words);
	free(m->gfns);
	memset(m, 0, sizeof(*m));
}
