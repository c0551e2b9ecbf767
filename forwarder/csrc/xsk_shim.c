// SPDX-License-Identifier: Apache-2.0
/*
 * lbfwd's C shim over libxdp's AF_XDP API (xdp/xsk.h).
 *
 * The ring helpers of xsk.h are static inline functions, which Rust cannot
 * call; this file wraps them, one call per burst (never per frame), and hides
 * the configuration structs so the Rust side only passes integers. Every
 * function returns 0 or a count on success and a negative errno on failure.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

_Static_assert(sizeof(struct xdp_desc) == 16, "struct xdp_desc is 16 bytes");
_Static_assert(__builtin_offsetof(struct xdp_desc, addr) == 0, "addr at 0");
_Static_assert(__builtin_offsetof(struct xdp_desc, len) == 8, "len at 8");
_Static_assert(__builtin_offsetof(struct xdp_desc, options) == 12, "options at 12");

/* A UMEM with the fill and completion rings of its first socket. */
struct lbx_umem {
	struct xsk_umem *umem;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
};

/* A socket with its rings; fill/comp point into the UMEM for the first
 * socket of a UMEM and into own_fill/own_comp for the others. */
struct lbx_xsk {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_ring_prod own_fill;
	struct xsk_ring_cons own_comp;
	struct xsk_ring_prod *fill;
	struct xsk_ring_cons *comp;
	int has_rx;
	int has_tx;
};

int lbx_umem_create(struct lbx_umem **out, void *area, __u64 size, __u32 fill_size,
		    __u32 comp_size, __u32 frame_size, __u32 frame_headroom)
{
	struct xsk_umem_config cfg;
	struct lbx_umem *u;
	int err;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	memset(&cfg, 0, sizeof(cfg));
	cfg.fill_size = fill_size;
	cfg.comp_size = comp_size;
	cfg.frame_size = frame_size;
	cfg.frame_headroom = frame_headroom;
	cfg.flags = 0;
	err = xsk_umem__create(&u->umem, area, size, &u->fill, &u->comp, &cfg);
	if (err) {
		free(u);
		return err < 0 ? err : -err;
	}
	*out = u;
	return 0;
}

int lbx_umem_delete(struct lbx_umem *u)
{
	int err = 0;

	if (!u)
		return 0;
	err = xsk_umem__delete(u->umem);
	if (err)
		return err; /* still in use by a socket: keep it */
	free(u);
	return 0;
}

int lbx_xsk_create(struct lbx_xsk **out, const char *ifname, __u32 queue, struct lbx_umem *u,
		   int first, __u32 rx_size, __u32 tx_size, __u16 bind_flags)
{
	struct xsk_socket_config cfg;
	struct lbx_xsk *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(&cfg, 0, sizeof(cfg));
	cfg.rx_size = rx_size;
	cfg.tx_size = tx_size;
	/* A later socket gets its own fill and completion rings, sized like the
	 * UMEM's (libxdp takes the sizes from the UMEM's config). */
	/* lbfwd loads and attaches its own XDP program (the VIP filter). */
	cfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
	cfg.xdp_flags = 0;
	cfg.bind_flags = bind_flags;
	if (first) {
		s->fill = &u->fill;
		s->comp = &u->comp;
	} else {
		s->fill = &s->own_fill;
		s->comp = &s->own_comp;
	}
	s->has_rx = rx_size != 0;
	s->has_tx = tx_size != 0;
	err = xsk_socket__create_shared(&s->xsk, ifname, queue, u->umem,
					s->has_rx ? &s->rx : NULL, s->has_tx ? &s->tx : NULL,
					s->fill, s->comp, &cfg);
	if (err) {
		free(s);
		return err < 0 ? err : -err;
	}
	*out = s;
	return 0;
}

void lbx_xsk_delete(struct lbx_xsk *s)
{
	if (!s)
		return;
	xsk_socket__delete(s->xsk);
	free(s);
}

int lbx_xsk_fd(const struct lbx_xsk *s)
{
	return xsk_socket__fd(s->xsk);
}

/* Copies up to max received descriptors out and releases their ring slots:
 * the frames stay owned by the caller. */
__u32 lbx_rx_burst(struct lbx_xsk *s, struct xdp_desc *out, __u32 max)
{
	__u32 idx = 0, n, i;

	if (!s->has_rx)
		return 0;
	n = xsk_ring_cons__peek(&s->rx, max, &idx);
	for (i = 0; i < n; i++)
		out[i] = *xsk_ring_cons__rx_desc(&s->rx, idx + i);
	if (n)
		xsk_ring_cons__release(&s->rx, n);
	return n;
}

/* Puts as many of the n descriptors as fit on the TX ring; returns how many. */
__u32 lbx_tx_submit(struct lbx_xsk *s, const struct xdp_desc *descs, __u32 n)
{
	__u32 idx = 0, i, room;

	if (!s->has_tx || !n)
		return 0;
	room = xsk_prod_nb_free(&s->tx, n);
	if (room < n)
		n = room;
	if (!n || xsk_ring_prod__reserve(&s->tx, n, &idx) != n)
		return 0;
	for (i = 0; i < n; i++)
		*xsk_ring_prod__tx_desc(&s->tx, idx + i) = descs[i];
	xsk_ring_prod__submit(&s->tx, n);
	return n;
}

/* Puts as many of the n frame addresses as fit on the fill ring, taking them
 * from the END of addrs (the caller's free list is a stack); returns how
 * many were placed: addrs[n - placed .. n]. */
__u32 lbx_fill(struct lbx_xsk *s, const __u64 *addrs, __u32 n)
{
	__u32 idx = 0, i, room;

	if (!n)
		return 0;
	room = xsk_prod_nb_free(s->fill, n);
	if (room > n)
		room = n;
	if (!room || xsk_ring_prod__reserve(s->fill, room, &idx) != room)
		return 0;
	for (i = 0; i < room; i++)
		*xsk_ring_prod__fill_addr(s->fill, idx + i) = addrs[n - room + i];
	xsk_ring_prod__submit(s->fill, room);
	return room;
}

/* Copies up to max completed TX addresses out and releases their slots. */
__u32 lbx_complete(struct lbx_xsk *s, __u64 *out, __u32 max)
{
	__u32 idx = 0, n, i;

	n = xsk_ring_cons__peek(s->comp, max, &idx);
	for (i = 0; i < n; i++)
		out[i] = *xsk_ring_cons__comp_addr(s->comp, idx + i);
	if (n)
		xsk_ring_cons__release(s->comp, n);
	return n;
}

int lbx_tx_needs_wakeup(const struct lbx_xsk *s)
{
	return s->has_tx && xsk_ring_prod__needs_wakeup(&s->tx);
}

int lbx_fill_needs_wakeup(const struct lbx_xsk *s)
{
	return xsk_ring_prod__needs_wakeup(s->fill);
}

/* TX descriptors submitted and not yet taken by the kernel. */
__u32 lbx_tx_pending(const struct lbx_xsk *s)
{
	if (!s->has_tx)
		return 0;
	return *s->tx.producer - __atomic_load_n(s->tx.consumer, __ATOMIC_ACQUIRE);
}

/* Opens and loads the XDP program object in buf and returns its program and
 * map fds in fds[]: program, lbfwd_vip4, lbfwd_vip6, lbfwd_xsks, lbfwd_stats. */
int lbx_prog_load(const void *buf, size_t len, struct bpf_object **out, int *fds)
{
	static const char *const maps[] = { "lbfwd_vip4", "lbfwd_vip6", "lbfwd_xsks",
					    "lbfwd_stats" };
	struct bpf_program *prog;
	struct bpf_object *obj;
	int err, i;

	obj = bpf_object__open_mem(buf, len, NULL);
	if (!obj)
		return errno ? -errno : -EINVAL;
	err = bpf_object__load(obj);
	if (err)
		goto fail;
	prog = bpf_object__find_program_by_name(obj, "lbfwd_xsk_vip");
	if (!prog) {
		err = -ENOENT;
		goto fail;
	}
	fds[0] = bpf_program__fd(prog);
	for (i = 0; i < 4; i++) {
		fds[i + 1] = bpf_object__find_map_fd_by_name(obj, maps[i]);
		if (fds[i + 1] < 0) {
			err = -ENOENT;
			goto fail;
		}
	}
	*out = obj;
	return 0;
fail:
	bpf_object__close(obj);
	return err < 0 ? err : -err;
}

/* Attaches prog_fd to ifindex through a BPF link (detached when the link fd
 * is closed, also when the process dies); flags picks the attach mode
 * (XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE). Returns the link fd. */
int lbx_xdp_link(int prog_fd, int ifindex, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd;

	fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
	return fd < 0 ? (errno ? -errno : fd) : fd;
}
