// Times Katran's XDP balancer (an object file compiled from a Katran
// source tree by scripts/katran-bench.sh) with BPF_PROG_TEST_RUN on one
// core: one VIP, REALS reals, its consistent-hashing ring filled through
// its own maps, its per-CPU LRU given enough room for every flow, and the
// frames lbfwd-pktgen wrote (the same flows lbfwd's many-flows table uses).
//
// Every test run carries one frame (repeat 1): with repeat > 1 the kernel
// runs the program again on the frame it has just encapsulated, which
// measures something else. The kernel's duration of a test run includes
// its own timer reads; an empty XDP program measured the same way gives
// that cost, printed as the baseline.
//
// Output, one line per measurement:
//   baseline ns=<median>
//   case flows=<N> round=<R> mean_ns=<X> p50_ns=<Y> packets=<P>
// flows=0 is the new-flow case (every packet a miss: consistent hashing
// and an LRU insert). Errors go to stderr with a non-zero exit.
//
// Build: gcc -O2 -I"$KATRAN_SRC" katran_bench.c -lbpf (the Katran tree
// gives the struct layouts and the ring size).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/types.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "katran/lib/bpf/balancer_consts.h"
#include "katran/lib/bpf/balancer_structs.h"

#define XDP_TX_VERDICT 3
// The flood guard's counter is reset this often while flows are created
// (outside the timed runs), so that every new flow is inserted as it is
// below Katran's new-connection limit.
#define FLOOD_RESET_EVERY 20000

struct frames {
  unsigned char* data;
  size_t* offset;
  unsigned short* len;
  size_t count;
};

static void die(const char* what, int err) {
  fprintf(stderr, "katran_bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
  exit(1);
}

static struct frames read_frames(const char* path, size_t max) {
  struct frames f = {0};
  FILE* in = fopen(path, "rb");
  if (!in) die(path, errno);
  fseek(in, 0, SEEK_END);
  long size = ftell(in);
  fseek(in, 0, SEEK_SET);
  f.data = malloc(size);
  if (!f.data || fread(f.data, 1, size, in) != (size_t)size) die(path, EIO);
  fclose(in);
  size_t cap = 1024;
  f.offset = malloc(cap * sizeof(size_t));
  f.len = malloc(cap * sizeof(unsigned short));
  for (size_t at = 0; at + 2 <= (size_t)size && f.count < max;) {
    unsigned short len = f.data[at] | (f.data[at + 1] << 8);
    if (at + 2 + len > (size_t)size) die("frames file truncated", EINVAL);
    if (f.count == cap) {
      cap *= 2;
      f.offset = realloc(f.offset, cap * sizeof(size_t));
      f.len = realloc(f.len, cap * sizeof(unsigned short));
    }
    f.offset[f.count] = at + 2;
    f.len[f.count] = len;
    f.count++;
    at += 2 + len;
  }
  return f;
}

static int map_fd(struct bpf_object* obj, const char* name) {
  struct bpf_map* m = bpf_object__find_map_by_name(obj, name);
  if (!m) {
    fprintf(stderr, "katran_bench: the program has no map %s\n", name);
    exit(1);
  }
  return bpf_map__fd(m);
}

static void update(int fd, const void* key, const void* value, const char* what) {
  if (bpf_map_update_elem(fd, key, value, BPF_ANY)) die(what, errno);
}

// One test run of `prog` on frame i; returns the kernel's duration (ns).
static __u32 run_one(int prog, const struct frames* f, size_t i, __u32* verdict) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->data + f->offset[i],
              .data_size_in = f->len[i], .repeat = 1);
  int err = bpf_prog_test_run_opts(prog, &opts);
  if (err) die("BPF_PROG_TEST_RUN", errno);
  *verdict = opts.retval;
  return opts.duration;
}

static int cmp_u32(const void* a, const void* b) {
  __u32 x = *(const __u32*)a, y = *(const __u32*)b;
  return x < y ? -1 : x > y;
}

static int ncpus;
static int stats_fd;

static void reset_flood_guard(void) {
  __u32 key = MAX_VIPS + NEW_CONN_RATE_CNTR;
  struct lb_stats* zero = calloc(ncpus, sizeof(struct lb_stats));
  update(stats_fd, &key, zero, "resetting the new-connection rate counter");
  free(zero);
}

static int new_lru(size_t entries) {
  int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "katran_lru", sizeof(struct flow_key),
                          sizeof(struct real_pos_lru), entries, NULL);
  if (fd < 0) die("creating a per-CPU LRU", errno);
  return fd;
}

// Times `n` frames starting at frame 0, `passes` times over; fills
// `times` (n * passes durations) and checks every verdict.
static size_t timed(int prog, const struct frames* f, size_t n, size_t passes, __u32* times,
                    int expect) {
  size_t k = 0;
  for (size_t p = 0; p < passes; p++) {
    for (size_t i = 0; i < n; i++) {
      __u32 verdict;
      if (expect == XDP_TX_VERDICT && n > FLOOD_RESET_EVERY && i % FLOOD_RESET_EVERY == 0)
        reset_flood_guard();
      times[k++] = run_one(prog, f, i, &verdict);
      if (expect >= 0 && (int)verdict != expect) {
        fprintf(stderr, "katran_bench: frame %zu: verdict %u, expected %d\n", i, verdict, expect);
        exit(1);
      }
    }
  }
  return k;
}

static void summary(__u32* times, size_t k, double* mean, __u32* p50) {
  double sum = 0;
  for (size_t i = 0; i < k; i++) sum += times[i];
  *mean = sum / k;
  qsort(times, k, sizeof(__u32), cmp_u32);
  *p50 = times[k / 2];
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr,
            "usage: katran_bench OBJECT FRAMES CORE ROUNDS FLOWS[,FLOWS...] [REALS] [MIN_PACKETS]\n");
    return 2;
  }
  const char* object = argv[1];
  const char* frames_path = argv[2];
  int core = atoi(argv[3]);
  int rounds = atoi(argv[4]);
  int reals = argc > 6 ? atoi(argv[6]) : 100;
  size_t min_packets = argc > 7 ? strtoul(argv[7], NULL, 10) : 200000;
  size_t cases[16];
  int ncases = 0;
  for (char* s = strtok(argv[5], ","); s && ncases < 16; s = strtok(NULL, ","))
    cases[ncases++] = strtoul(s, NULL, 10);
  size_t max_flows = 0;
  for (int c = 0; c < ncases; c++)
    if (cases[c] > max_flows) max_flows = cases[c];
  if (rounds < 1 || reals < 1 || reals >= MAX_REALS || ncases == 0) {
    fprintf(stderr, "katran_bench: bad arguments\n");
    return 2;
  }

  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  if (sched_setaffinity(0, sizeof(set), &set)) die("pinning to the core", errno);
  ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) die("counting CPUs", -ncpus);

  struct frames f = read_frames(frames_path, max_flows);
  if (f.count < max_flows) {
    fprintf(stderr, "katran_bench: %s holds %zu frames, %zu needed\n", frames_path, f.count,
            max_flows);
    return 1;
  }

  struct bpf_object* obj = bpf_object__open_file(object, NULL);
  if (!obj) {
    fprintf(stderr,
            "katran_bench: libbpf cannot open %s (its message is above; \"can't determine key "
            "size\" of lru_mapping.inner: compile with a newer clang, KATRAN_CLANG=clang-16)\n",
            object);
    return 1;
  }
  struct bpf_program* prog_s = bpf_object__find_program_by_name(obj, "balancer_ingress");
  if (!prog_s) {
    fprintf(stderr, "katran_bench: %s has no program balancer_ingress\n", object);
    return 1;
  }
  bpf_program__set_type(prog_s, BPF_PROG_TYPE_XDP);
  int err = bpf_object__load(obj);
  if (err) die("loading the balancer (the verifier's log is above)", err);
  int prog = bpf_program__fd(prog_s);
  stats_fd = map_fd(obj, "stats");

  // The VIP: the destination and TCP port of the frames (frame 0).
  const unsigned char* f0 = f.data + f.offset[0];
  if (f.len[0] < 54 || f0[12] != 0x08 || f0[13] != 0x00 || f0[23] != 6) {
    fprintf(stderr, "katran_bench: the frames are not IPv4 TCP\n");
    return 1;
  }
  struct vip_definition vip = {0};
  memcpy(&vip.vip, f0 + 30, 4);
  memcpy(&vip.port, f0 + 36, 2);
  vip.proto = 6;
  struct vip_meta meta = {.flags = 0, .vip_num = 0};
  update(map_fd(obj, "vip_map"), &vip, &meta, "vip_map");
  // Reals 1..REALS (Katran's real ids start at 1), IPv4 10.0.x.y.
  int reals_fd = map_fd(obj, "reals");
  for (__u32 r = 1; r <= (__u32)reals; r++) {
    struct real_definition rd = {0};
    rd.dst = htonl(0x0A000000u + r);
    update(reals_fd, &r, &rd, "reals");
  }
  // The ring of VIP 0: RING_SIZE positions, each a real, spread by a hash
  // of the position (Katran's control plane fills it with Maglev; the
  // data path only reads one position per new flow).
  int ring_fd = map_fd(obj, "ch_rings");
  for (__u32 i = 0; i < RING_SIZE; i++) {
    __u32 x = i * 2654435761u;
    x ^= x >> 15;
    __u32 real = 1 + x % reals;
    update(ring_fd, &i, &real, "ch_rings");
  }
  // The MAC of the default router.
  struct ctl_value mac = {0};
  unsigned char router[6] = {0x02, 0, 0, 0, 0xff, 0x01};
  memcpy(mac.mac, router, 6);
  __u32 zero = 0;
  update(map_fd(obj, "ctl_array"), &zero, &mac, "ctl_array");
  int lru_mapping = map_fd(obj, "lru_mapping");
  __u32 cpu = core;

  // The empty program: r0 = XDP_PASS; exit.
  struct bpf_insn empty[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 2},
      {.code = BPF_JMP | BPF_EXIT},
  };
  int empty_fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "empty", "GPL", empty, 2, NULL);
  if (empty_fd < 0) die("loading the empty XDP program", errno);

  size_t most = max_flows > min_packets ? max_flows : min_packets;
  __u32* times = malloc((most + max_flows) * sizeof(__u32));
  // Each case's LRU, made once and filled with its flows (all misses).
  int lru[16];
  for (int c = 0; c < ncases; c++) {
    size_t entries = cases[c] * 2 > 4096 ? cases[c] * 2 : 4096;
    lru[c] = new_lru(entries);
    update(lru_mapping, &cpu, &lru[c], "lru_mapping");
    timed(prog, &f, cases[c], 1, times, XDP_TX_VERDICT);
  }
  {
    size_t passes = min_packets;
    size_t k = timed(empty_fd, &f, 1, passes, times, 2);
    double mean;
    __u32 p50;
    summary(times, k, &mean, &p50);
    printf("baseline ns=%u mean_ns=%.1f packets=%zu\n", p50, mean, k);
    fflush(stdout);
  }
  for (int r = 1; r <= rounds; r++) {
    for (int c = 0; c < ncases; c++) {
      update(lru_mapping, &cpu, &lru[c], "lru_mapping");
      size_t passes = (min_packets + cases[c] - 1) / cases[c];
      size_t k = timed(prog, &f, cases[c], passes, times, XDP_TX_VERDICT);
      double mean;
      __u32 p50;
      summary(times, k, &mean, &p50);
      printf("case flows=%zu round=%d mean_ns=%.1f p50_ns=%u packets=%zu\n", cases[c], r, mean,
             p50, k);
      fflush(stdout);
    }
    // New flows: an empty LRU, every one of the most flows once.
    int fresh = new_lru(max_flows * 2 > 4096 ? max_flows * 2 : 4096);
    update(lru_mapping, &cpu, &fresh, "lru_mapping");
    size_t k = timed(prog, &f, max_flows, 1, times, XDP_TX_VERDICT);
    double mean;
    __u32 p50;
    summary(times, k, &mean, &p50);
    printf("case flows=0 round=%d mean_ns=%.1f p50_ns=%u packets=%zu\n", r, mean, p50, k);
    fflush(stdout);
    close(fresh);
  }
  return 0;
}
