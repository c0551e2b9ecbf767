/* lbfwd's C shim over DPDK 22.11: the static inline functions of DPDK as
 * real symbols, and the slow-path calls whose argument structs are large or
 * version dependent, with plain structs of our own at the boundary so the
 * Rust side (forwarder/src/io/dpdk.rs) never mirrors a DPDK struct except
 * the few rte_mbuf fields whose offsets dpdk_shim.c pins with static asserts.
 *
 * Every function returns 0 or a count on success and a negative errno value
 * on failure unless its comment says otherwise. */
#ifndef LBFWD_DPDK_SHIM_H
#define LBFWD_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/* Length of an extended statistic's name (RTE_ETH_XSTATS_NAME_SIZE). */
#define LBFWD_XSTAT_NAME_LEN 64
/* Length of the driver name copied into lbfwd_port_info. */
#define LBFWD_DRIVER_NAME_LEN 64

/* What lbfwd needs to know about a port before configuring it. */
struct lbfwd_port_info {
    char driver[LBFWD_DRIVER_NAME_LEN];
    uint64_t flow_type_rss_offloads;
    uint32_t max_rx_pktlen;
    uint32_t if_index;
    int32_t socket_id;
    uint16_t max_rx_queues;
    uint16_t max_tx_queues;
    uint16_t reta_size;
    uint8_t mac[6];
};

/* How to configure and start a port. */
struct lbfwd_port_conf {
    /* in: mbuf pool for every RX queue */
    struct rte_mempool *pool;
    /* in: wanted RSS hash functions (RTE_ETH_RSS_*); out: those enabled */
    uint64_t rss_hf;
    /* in: queue counts (RX = TX) */
    uint16_t nb_queues;
    /* in: wanted descriptors per queue; out: after the driver's limits */
    uint16_t nb_rxd;
    uint16_t nb_txd;
    /* in: 1 = promiscuous mode */
    uint8_t promiscuous;
    /* in: 1 = receive all multicast (NDP for the host path) */
    uint8_t allmulticast;
    /* in: MTU to set, 0 = the driver's default */
    uint16_t mtu;
};

/* Link state (rte_eth_link, flattened). */
struct lbfwd_link {
    uint32_t speed_mbps; /* 0 = unknown / none */
    uint8_t up;
    uint8_t full_duplex;
    uint8_t autoneg;
};

/* Port-level basic statistics (rte_eth_stats without the per-queue arrays). */
struct lbfwd_port_stats {
    uint64_t ipackets;
    uint64_t opackets;
    uint64_t ibytes;
    uint64_t obytes;
    uint64_t imissed;
    uint64_t ierrors;
    uint64_t oerrors;
    uint64_t rx_nombuf;
};

/* Offsets of the rte_mbuf fields the Rust side reads and writes directly on
 * the packet path; dpdk_shim.c asserts them at compile time. */
#define LBFWD_MBUF_OFF_BUF_ADDR 0
#define LBFWD_MBUF_OFF_DATA_OFF 16
#define LBFWD_MBUF_OFF_REFCNT 18
#define LBFWD_MBUF_OFF_NB_SEGS 20
#define LBFWD_MBUF_OFF_PKT_LEN 36
#define LBFWD_MBUF_OFF_DATA_LEN 40
#define LBFWD_MBUF_OFF_BUF_LEN 54

/* EAL. */
int lbfwd_eal_init(int argc, char **argv, char *log, size_t log_len);
int lbfwd_errno(void);
/* EAL's runtime directory of this process ("" before EAL made it). */
const char *lbfwd_runtime_dir(void);
const char *lbfwd_strerror(int err);
unsigned lbfwd_lcore_id(void);
int lbfwd_thread_register(void);
void lbfwd_thread_unregister(void);
int lbfwd_dev_probe(const char *devargs);
int lbfwd_vdev_remove(const char *name);
uint32_t lbfwd_pktmbuf_headroom(void);
uint32_t lbfwd_mbuf_default_buf_size(void);

/* Ports. */
int lbfwd_port_by_name(const char *name, uint16_t *port);
/* Writes the name of the n-th valid port into buf; -ENODEV past the last. */
int lbfwd_port_nth_name(unsigned n, char *buf, size_t len);
/* RSS hash functions lbfwd asks for: addresses (ip) and ports (l4). */
void lbfwd_rss_wanted(uint64_t *ip, uint64_t *l4);
int lbfwd_port_info(uint16_t port, struct lbfwd_port_info *out);
int lbfwd_port_setup(uint16_t port, struct lbfwd_port_conf *conf);
void lbfwd_port_shutdown(uint16_t port);
int lbfwd_port_link(uint16_t port, struct lbfwd_link *out);
int lbfwd_port_stats(uint16_t port, struct lbfwd_port_stats *out);
int lbfwd_port_xstats_count(uint16_t port);
int lbfwd_port_xstats(uint16_t port, char (*names)[LBFWD_XSTAT_NAME_LEN], uint64_t *values,
                      unsigned n);

/* Mempools. */
struct rte_mempool *lbfwd_pool_create(const char *name, unsigned n, unsigned cache,
                                      int socket);
void lbfwd_pool_free(struct rte_mempool *pool);
unsigned lbfwd_pool_in_use(const struct rte_mempool *pool);
/* Writes frames[k % nframes] (each frame_len bytes, back to back) at the
 * default headroom of the k-th mbuf of the pool; returns the mbufs written.
 * Only while nothing uses the pool (benchmarks with net_null,copy=0). */
unsigned lbfwd_pool_fill(struct rte_mempool *pool, const uint8_t *frames, uint16_t frame_len,
                         unsigned nframes);

/* The packet path. */
uint16_t lbfwd_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t lbfwd_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *lbfwd_mbuf_alloc(struct rte_mempool *pool);
void lbfwd_mbuf_free(struct rte_mbuf *m);
void lbfwd_mbuf_free_bulk(struct rte_mbuf **pkts, unsigned n);
char *lbfwd_mbuf_data(struct rte_mbuf *m);
uint16_t lbfwd_mbuf_headroom(const struct rte_mbuf *m);
uint16_t lbfwd_mbuf_data_len(const struct rte_mbuf *m);

/* Sizes of the structs above, for the Rust side's layout tests. */
void lbfwd_shim_layout(size_t out[4]);

#endif
