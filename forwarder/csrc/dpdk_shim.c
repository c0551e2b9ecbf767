/* lbfwd's C shim over DPDK 22.11; see dpdk_shim.h. Compiled by build.rs
 * (feature `dpdk`) with the flags `pkg-config --cflags libdpdk` gives. */
#include "dpdk_shim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* The Rust side reads and writes these rte_mbuf fields in place; a DPDK
 * whose layout differs must fail the build, not corrupt packets. */
_Static_assert(offsetof(struct rte_mbuf, buf_addr) == LBFWD_MBUF_OFF_BUF_ADDR, "buf_addr");
_Static_assert(offsetof(struct rte_mbuf, data_off) == LBFWD_MBUF_OFF_DATA_OFF, "data_off");
_Static_assert(offsetof(struct rte_mbuf, refcnt) == LBFWD_MBUF_OFF_REFCNT, "refcnt");
_Static_assert(offsetof(struct rte_mbuf, nb_segs) == LBFWD_MBUF_OFF_NB_SEGS, "nb_segs");
_Static_assert(offsetof(struct rte_mbuf, pkt_len) == LBFWD_MBUF_OFF_PKT_LEN, "pkt_len");
_Static_assert(offsetof(struct rte_mbuf, data_len) == LBFWD_MBUF_OFF_DATA_LEN, "data_len");
_Static_assert(offsetof(struct rte_mbuf, buf_len) == LBFWD_MBUF_OFF_BUF_LEN, "buf_len");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_off) == 2, "data_off is u16");
_Static_assert(sizeof(((struct rte_mbuf *)0)->refcnt) == 2, "refcnt is u16");
_Static_assert(sizeof(((struct rte_mbuf *)0)->nb_segs) == 2, "nb_segs is u16");
_Static_assert(sizeof(((struct rte_mbuf *)0)->pkt_len) == 4, "pkt_len is u32");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_len) == 2, "data_len is u16");
_Static_assert(sizeof(((struct rte_mbuf *)0)->buf_len) == 2, "buf_len is u16");
/* lbfwd prepends encapsulation into the mbuf headroom (frame.rs HEADROOM). */
_Static_assert(RTE_PKTMBUF_HEADROOM >= 128, "RTE_PKTMBUF_HEADROOM must be >= lbfwd's HEADROOM");
_Static_assert(RTE_ETH_XSTATS_NAME_SIZE == LBFWD_XSTAT_NAME_LEN, "xstat name size");

/* ---- EAL ---------------------------------------------------------------- */

int lbfwd_eal_init(int argc, char **argv, char *log, size_t log_len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&buf, &size);
    if (mem != NULL)
        rte_openlog_stream(mem);
    int rc = rte_eal_init(argc, argv);
    int err = rc < 0 ? rte_errno : 0;
    if (mem != NULL) {
        rte_openlog_stream(NULL);
        fclose(mem);
        if (buf != NULL) {
            /* The operator still sees EAL's output where it always goes. */
            fputs(buf, stderr);
            if (log != NULL && log_len > 0) {
                size_t from = size >= log_len ? size - (log_len - 1) : 0;
                size_t n = size - from;
                memcpy(log, buf + from, n);
                log[n] = '\0';
            }
            free(buf);
        }
    }
    if (rc < 0)
        return err > 0 ? -err : -EINVAL;
    return rc;
}

int lbfwd_errno(void)
{
    return rte_errno;
}

const char *lbfwd_strerror(int err)
{
    return rte_strerror(err);
}

unsigned lbfwd_lcore_id(void)
{
    return rte_lcore_id();
}

int lbfwd_thread_register(void)
{
    if (rte_lcore_id() != LCORE_ID_ANY)
        return (int)rte_lcore_id();
    if (rte_thread_register() < 0)
        return rte_errno > 0 ? -rte_errno : -EINVAL;
    return (int)rte_lcore_id();
}

void lbfwd_thread_unregister(void)
{
    rte_thread_unregister();
}

const char *lbfwd_runtime_dir(void)
{
    return rte_eal_get_runtime_dir();
}

int lbfwd_dev_probe(const char *devargs)
{
    return rte_dev_probe(devargs);
}

int lbfwd_vdev_remove(const char *name)
{
    return rte_eal_hotplug_remove("vdev", name);
}

uint32_t lbfwd_pktmbuf_headroom(void)
{
    return RTE_PKTMBUF_HEADROOM;
}

uint32_t lbfwd_mbuf_default_buf_size(void)
{
    return RTE_MBUF_DEFAULT_BUF_SIZE;
}

/* ---- ports -------------------------------------------------------------- */

int lbfwd_port_by_name(const char *name, uint16_t *port)
{
    return rte_eth_dev_get_port_by_name(name, port);
}

int lbfwd_port_nth_name(unsigned n, char *buf, size_t len)
{
    uint16_t port;
    unsigned i = 0;
    if (len < RTE_ETH_NAME_MAX_LEN)
        return -EINVAL;
    RTE_ETH_FOREACH_DEV(port)
    {
        if (i++ == n)
            return rte_eth_dev_get_name_by_port(port, buf) == 0 ? 0 : -ENODEV;
    }
    return -ENODEV;
}

void lbfwd_rss_wanted(uint64_t *ip, uint64_t *l4)
{
    *ip = RTE_ETH_RSS_IP;
    *l4 = RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_SCTP;
}

int lbfwd_port_info(uint16_t port, struct lbfwd_port_info *out)
{
    struct rte_eth_dev_info info;
    struct rte_ether_addr mac;
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (info.driver_name != NULL)
        snprintf(out->driver, sizeof(out->driver), "%s", info.driver_name);
    out->flow_type_rss_offloads = info.flow_type_rss_offloads;
    out->max_rx_pktlen = info.max_rx_pktlen;
    out->if_index = info.if_index;
    out->socket_id = rte_eth_dev_socket_id(port);
    out->max_rx_queues = info.max_rx_queues;
    out->max_tx_queues = info.max_tx_queues;
    out->reta_size = info.reta_size;
    if (rte_eth_macaddr_get(port, &mac) == 0)
        memcpy(out->mac, mac.addr_bytes, sizeof(out->mac));
    return 0;
}

int lbfwd_port_setup(uint16_t port, struct lbfwd_port_conf *c)
{
    struct rte_eth_dev_info info;
    struct rte_eth_conf conf;
    struct rte_eth_txconf txconf;
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return rc;
    if (c->nb_queues == 0 || c->pool == NULL)
        return -EINVAL;

    memset(&conf, 0, sizeof(conf));
    uint64_t hf = c->rss_hf & info.flow_type_rss_offloads;
    if (c->nb_queues > 1 && hf != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = NULL; /* the driver's default key */
        conf.rx_adv_conf.rss_conf.rss_hf = hf;
    } else {
        hf = 0;
    }
    /* One pool, refcnt 1, no indirect mbufs: the cheap free path applies. */
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    c->rss_hf = hf;
    if (c->mtu != 0)
        conf.rxmode.mtu = c->mtu;

    rc = rte_eth_dev_configure(port, c->nb_queues, c->nb_queues, &conf);
    if (rc < 0)
        return rc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &c->nb_rxd, &c->nb_txd);
    if (rc < 0)
        return rc;
    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0)
        socket = SOCKET_ID_ANY;
    txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < c->nb_queues; q++) {
        rc = rte_eth_rx_queue_setup(port, q, c->nb_rxd, (unsigned)socket, NULL, c->pool);
        if (rc < 0)
            return rc;
        rc = rte_eth_tx_queue_setup(port, q, c->nb_txd, (unsigned)socket, &txconf);
        if (rc < 0)
            return rc;
    }
    /* Drivers that do not apply rxmode.mtu at start (net_af_packet sets the
     * kernel interface's MTU only here). */
    if (c->mtu != 0) {
        rc = rte_eth_dev_set_mtu(port, c->mtu);
        if (rc < 0 && rc != -ENOTSUP)
            return rc;
    }
    if (c->promiscuous) {
        rc = rte_eth_promiscuous_enable(port);
        if (rc < 0 && rc != -ENOTSUP)
            return rc;
    }
    if (c->allmulticast) {
        rc = rte_eth_allmulticast_enable(port);
        if (rc < 0 && rc != -ENOTSUP)
            return rc;
    }
    return rte_eth_dev_start(port);
}

void lbfwd_port_shutdown(uint16_t port)
{
    (void)rte_eth_dev_stop(port);
    (void)rte_eth_dev_close(port);
}

int lbfwd_port_link(uint16_t port, struct lbfwd_link *out)
{
    struct rte_eth_link link;
    memset(&link, 0, sizeof(link));
    int rc = rte_eth_link_get_nowait(port, &link);
    if (rc != 0)
        return rc;
    out->speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
    out->up = link.link_status == RTE_ETH_LINK_UP;
    out->full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    out->autoneg = link.link_autoneg == RTE_ETH_LINK_AUTONEG;
    return 0;
}

int lbfwd_port_stats(uint16_t port, struct lbfwd_port_stats *out)
{
    struct rte_eth_stats st;
    int rc = rte_eth_stats_get(port, &st);
    if (rc != 0)
        return rc;
    out->ipackets = st.ipackets;
    out->opackets = st.opackets;
    out->ibytes = st.ibytes;
    out->obytes = st.obytes;
    out->imissed = st.imissed;
    out->ierrors = st.ierrors;
    out->oerrors = st.oerrors;
    out->rx_nombuf = st.rx_nombuf;
    return 0;
}

int lbfwd_port_xstats_count(uint16_t port)
{
    return rte_eth_xstats_get_names(port, NULL, 0);
}

/* Fills up to n names and values; returns how many there are (more than n:
 * call again with room for that many). */
int lbfwd_port_xstats(uint16_t port, char (*names)[LBFWD_XSTAT_NAME_LEN], uint64_t *values,
                      unsigned n)
{
    if (n == 0)
        return rte_eth_xstats_get_names(port, NULL, 0);
    struct rte_eth_xstat_name *xnames = calloc(n, sizeof(*xnames));
    struct rte_eth_xstat *xstats = calloc(n, sizeof(*xstats));
    int rc;
    if (xnames == NULL || xstats == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    int nnames = rte_eth_xstats_get_names(port, xnames, n);
    if (nnames < 0 || (unsigned)nnames > n) {
        rc = nnames;
        goto out;
    }
    int nvals = rte_eth_xstats_get(port, xstats, n);
    if (nvals < 0 || (unsigned)nvals > n) {
        rc = nvals;
        goto out;
    }
    for (int i = 0; i < nvals; i++) {
        uint64_t id = xstats[i].id;
        if (id < (uint64_t)nnames)
            memcpy(names[i], xnames[id].name, LBFWD_XSTAT_NAME_LEN);
        else
            snprintf(names[i], LBFWD_XSTAT_NAME_LEN, "xstat_%llu", (unsigned long long)id);
        names[i][LBFWD_XSTAT_NAME_LEN - 1] = '\0';
        values[i] = xstats[i].value;
    }
    rc = nvals;
out:
    free(xnames);
    free(xstats);
    return rc;
}

/* ---- mempools ----------------------------------------------------------- */

struct rte_mempool *lbfwd_pool_create(const char *name, unsigned n, unsigned cache, int socket)
{
    return rte_pktmbuf_pool_create(name, n, cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
}

void lbfwd_pool_free(struct rte_mempool *pool)
{
    rte_mempool_free(pool);
}

unsigned lbfwd_pool_in_use(const struct rte_mempool *pool)
{
    return rte_mempool_in_use_count(pool);
}

struct pool_fill {
    const uint8_t *frames;
    uint16_t frame_len;
    unsigned nframes;
    unsigned done;
};

static void pool_fill_one(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
    struct pool_fill *f = arg;
    struct rte_mbuf *m = obj;
    (void)mp;
    if (RTE_PKTMBUF_HEADROOM + (unsigned)f->frame_len > m->buf_len)
        return;
    memcpy((char *)m->buf_addr + RTE_PKTMBUF_HEADROOM,
           f->frames + (size_t)(idx % f->nframes) * f->frame_len, f->frame_len);
    f->done++;
}

unsigned lbfwd_pool_fill(struct rte_mempool *pool, const uint8_t *frames, uint16_t frame_len,
                         unsigned nframes)
{
    struct pool_fill f = {frames, frame_len, nframes, 0};
    if (nframes == 0 || frame_len == 0)
        return 0;
    rte_mempool_obj_iter(pool, pool_fill_one, &f);
    return f.done;
}

/* ---- the packet path ---------------------------------------------------- */

uint16_t lbfwd_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t lbfwd_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *lbfwd_mbuf_alloc(struct rte_mempool *pool)
{
    return rte_pktmbuf_alloc(pool);
}

void lbfwd_mbuf_free(struct rte_mbuf *m)
{
    rte_pktmbuf_free(m);
}

void lbfwd_mbuf_free_bulk(struct rte_mbuf **pkts, unsigned n)
{
    rte_pktmbuf_free_bulk(pkts, n);
}

char *lbfwd_mbuf_data(struct rte_mbuf *m)
{
    return rte_pktmbuf_mtod(m, char *);
}

uint16_t lbfwd_mbuf_headroom(const struct rte_mbuf *m)
{
    return rte_pktmbuf_headroom(m);
}

uint16_t lbfwd_mbuf_data_len(const struct rte_mbuf *m)
{
    return rte_pktmbuf_data_len(m);
}

/* ---- layout checks for the Rust mirrors of the shim's own structs ------- */

void lbfwd_shim_layout(size_t out[4])
{
    out[0] = sizeof(struct lbfwd_port_info);
    out[1] = sizeof(struct lbfwd_port_conf);
    out[2] = sizeof(struct lbfwd_link);
    out[3] = sizeof(struct lbfwd_port_stats);
}
