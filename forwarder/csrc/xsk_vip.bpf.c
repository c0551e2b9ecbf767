// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * lbfwd's XDP program for the AF_XDP backend: redirects frames whose
 * destination address is a VIP to the AF_XDP socket of their receive queue,
 * and with them ARP requests and IPv6 neighbour solicitations whose target
 * is a VIP (lbfwd answers those itself, [l2]; the kernel owns no VIP), and
 * passes everything else (other ARP and NDP, the appliance's own SSH and
 * BGP, ...) to the kernel unchanged.
 *
 * Maps (filled from user space, off the fast path):
 *   lbfwd_vip4  hash  IPv4 address (network order) -> 1
 *   lbfwd_vip6  hash  IPv6 address (network order) -> 1
 *   lbfwd_xsks  xskmap  rx queue index -> AF_XDP socket
 *   lbfwd_stats percpu array of counters, see enum stat below.
 *
 * A VIP frame on a queue without a socket is dropped, not passed: the kernel
 * must never route VIP traffic a second time or answer for it.
 * 802.1Q/802.1ad tagged frames are passed (lbfwd's pipeline is untagged).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_VIPS 4096
#define MAX_QUEUES 256

enum stat {
	STAT_REDIRECTED = 0, /* VIP frame handed to a socket */
	STAT_PASSED = 1,     /* not a VIP frame: to the kernel */
	STAT_NO_SOCKET = 2,  /* VIP frame, no socket on its queue: dropped */
	STAT_MAX = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, __u8);
} lbfwd_vip4 SEC(".maps");

struct vip6 {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct vip6);
	__type(value, __u8);
} lbfwd_vip6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} lbfwd_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lbfwd_stats SEC(".maps");

static __always_inline int count(__u32 stat, int action)
{
	__u64 *n = bpf_map_lookup_elem(&lbfwd_stats, &stat);

	if (n)
		*n += 1;
	return action;
}

/* Offset of the target protocol address in an ARP packet (IPv4/Ethernet). */
#define ARP_TPA 24
/* ICMPv6 neighbour solicitation and the offset of its target address. */
#define ND_SOLICIT 135
#define ND_TARGET 8

static __always_inline int is_vip(void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		__u8 *arp = (void *)(eth + 1);
		__u32 tpa;

		if ((void *)(arp + ARP_TPA + 4) > data_end)
			return 0;
		__builtin_memcpy(&tpa, arp + ARP_TPA, 4);
		return bpf_map_lookup_elem(&lbfwd_vip4, &tpa) != NULL;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 dst;

		if ((void *)(ip + 1) > data_end)
			return 0;
		dst = ip->daddr;
		return bpf_map_lookup_elem(&lbfwd_vip4, &dst) != NULL;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct vip6 dst;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		if (ip6->nexthdr == IPPROTO_ICMPV6) {
			__u8 *icmp = (void *)(ip6 + 1);

			if ((void *)(icmp + ND_TARGET + 16) <= data_end && icmp[0] == ND_SOLICIT) {
				__builtin_memcpy(dst.addr, icmp + ND_TARGET, sizeof(dst.addr));
				if (bpf_map_lookup_elem(&lbfwd_vip6, &dst))
					return 1;
			}
		}
		__builtin_memcpy(dst.addr, &ip6->daddr, sizeof(dst.addr));
		return bpf_map_lookup_elem(&lbfwd_vip6, &dst) != NULL;
	}
	return 0;
}

SEC("xdp")
int lbfwd_xsk_vip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int action;

	if (!is_vip(data, data_end))
		return count(STAT_PASSED, XDP_PASS);
	/* The low bits of flags are the action when the queue has no socket. */
	action = bpf_redirect_map(&lbfwd_xsks, ctx->rx_queue_index, XDP_DROP);
	return count(action == XDP_REDIRECT ? STAT_REDIRECTED : STAT_NO_SOCKET, action);
}

char _license[] SEC("license") = "Dual BSD/GPL";
