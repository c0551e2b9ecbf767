//! [`AfPacketQueue`]: one worker's receive and transmit rings, the
//! per-packet receive loops (TPACKET V2 and V3) and the transmit ring.
#![allow(unsafe_code)]

use super::ring::{bind_to, packet_socket, setsockopt, status_word, Mapping, V3Cursor};
use super::{
    AfPacketConfig, TpacketVersion, TX_DATA_OFFSET, V2_BLOCK_SIZE, V3_BLOCK_SIZE,
    V3_BLOCK_TIMEOUT_MS,
};
use crate::frame::{Frame, HEADROOM};
use crate::io::sys::Fd;
use crate::io::{Disposition, IoError, QueueStats, WorkerQueue};
use crate::wire::checksum;
use std::sync::atomic::Ordering;

/// One worker's AF_PACKET queue. See the module docs.
pub struct AfPacketQueue {
    // Field order is drop order: unmap the rings before closing their
    // sockets (closing a socket whose ring is still mapped makes the kernel
    // log "packet_mmap: vma is busy").
    rx_ring: Mapping,
    tx_ring: Mapping,
    rx_fd: Fd,
    tx_fd: Fd,
    version: TpacketVersion,
    frame_size: usize,
    rx_frames: usize,
    rx_head: usize,
    v3_block_size: usize,
    v3_blocks: usize,
    v3: V3Cursor,
    tx_frames: usize,
    tx_head: usize,
    tx_pending: usize,
    tx_max_len: usize,
    fix_checksums: bool,
    ingress: String,
    egress: String,
    stats: QueueStats,
}

// SAFETY: the queue owns its sockets and mappings outright; the raw pointers
// are only used by the thread that owns the queue.
unsafe impl Send for AfPacketQueue {}

impl AfPacketQueue {
    /// Opens the receive and transmit rings for one worker.
    pub fn open(config: &AfPacketConfig) -> Result<Self, IoError> {
        config.validate()?;
        let ingress = crate::io::interface_info(&config.ingress)?;
        let egress_name = config
            .egress
            .clone()
            .unwrap_or_else(|| config.ingress.clone());
        let egress = crate::io::interface_info(&egress_name)?;
        let frame_size = config.frame_size as usize;
        let ifname = config.ingress.as_str();
        // Worst case (V3) slot layout: kernel header and address, the
        // reserve, then a full frame with one VLAN tag.
        let need = (libc::TPACKET3_HDRLEN + 16).next_multiple_of(16)
            + HEADROOM
            + ingress.mtu as usize
            + 18;
        if frame_size < need {
            return Err(IoError::Setup(format!(
                "af_packet on {ifname}: frame_size {frame_size} is too small for MTU {} ({need} bytes needed with headroom); raise frame_size",
                ingress.mtu
            )));
        }

        // Receive socket.
        let rx_fd = packet_socket(ifname)?;
        let version = match config.version {
            TpacketVersion::V2 => libc::tpacket_versions::TPACKET_V2 as libc::c_int,
            TpacketVersion::V3 => libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        };
        setsockopt(
            &rx_fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION",
            ifname,
        )?;
        let reserve = HEADROOM as libc::c_uint;
        setsockopt(
            &rx_fd,
            libc::SOL_PACKET,
            libc::PACKET_RESERVE,
            &reserve,
            "PACKET_RESERVE",
            ifname,
        )?;
        let one: libc::c_int = 1;
        setsockopt(
            &rx_fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
            ifname,
        )?;

        let (rx_len, rx_frames, v3_block_size, v3_blocks) = match config.version {
            TpacketVersion::V2 => {
                let per_block = V2_BLOCK_SIZE / config.frame_size;
                let blocks = config.rx_frames.div_ceil(per_block);
                let req = libc::tpacket_req {
                    tp_block_size: V2_BLOCK_SIZE,
                    tp_block_nr: blocks,
                    tp_frame_size: config.frame_size,
                    tp_frame_nr: blocks * per_block,
                };
                setsockopt(
                    &rx_fd,
                    libc::SOL_PACKET,
                    libc::PACKET_RX_RING,
                    &req,
                    "PACKET_RX_RING",
                    ifname,
                )?;
                (
                    (V2_BLOCK_SIZE * blocks) as usize,
                    (blocks * per_block) as usize,
                    0,
                    0,
                )
            }
            TpacketVersion::V3 => {
                let bytes = u64::from(config.rx_frames) * u64::from(config.frame_size);
                let blocks = (bytes.div_ceil(u64::from(V3_BLOCK_SIZE)) as u32).max(2);
                let req = libc::tpacket_req3 {
                    tp_block_size: V3_BLOCK_SIZE,
                    tp_block_nr: blocks,
                    tp_frame_size: config.frame_size,
                    tp_frame_nr: blocks * (V3_BLOCK_SIZE / config.frame_size),
                    tp_retire_blk_tov: V3_BLOCK_TIMEOUT_MS,
                    tp_sizeof_priv: 0,
                    tp_feature_req_word: 0,
                };
                setsockopt(
                    &rx_fd,
                    libc::SOL_PACKET,
                    libc::PACKET_RX_RING,
                    &req,
                    "PACKET_RX_RING (V3)",
                    ifname,
                )?;
                (
                    (V3_BLOCK_SIZE * blocks) as usize,
                    0,
                    V3_BLOCK_SIZE as usize,
                    blocks as usize,
                )
            }
        };
        let rx_ring = Mapping::new(&rx_fd, rx_len, ifname)?;
        bind_to(&rx_fd, ingress.index, libc::ETH_P_ALL as u16, ifname)?;
        if let Some(group) = config.fanout {
            let arg: u32 = u32::from(group) | (libc::PACKET_FANOUT_HASH << 16);
            setsockopt(
                &rx_fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg,
                "PACKET_FANOUT (hash)",
                ifname,
            )?;
        }

        // Transmit socket.
        let tx_fd = packet_socket(&egress_name)?;
        let v2 = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(
            &tx_fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &v2,
            "PACKET_VERSION",
            &egress_name,
        )?;
        setsockopt(
            &tx_fd,
            libc::SOL_PACKET,
            libc::PACKET_LOSS,
            &one,
            "PACKET_LOSS",
            &egress_name,
        )?;
        if config.qdisc_bypass {
            setsockopt(
                &tx_fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one,
                "PACKET_QDISC_BYPASS",
                &egress_name,
            )?;
        }
        let per_block = V2_BLOCK_SIZE / config.frame_size;
        let tx_blocks = config.tx_frames.div_ceil(per_block);
        let req = libc::tpacket_req {
            tp_block_size: V2_BLOCK_SIZE,
            tp_block_nr: tx_blocks,
            tp_frame_size: config.frame_size,
            tp_frame_nr: tx_blocks * per_block,
        };
        setsockopt(
            &tx_fd,
            libc::SOL_PACKET,
            libc::PACKET_TX_RING,
            &req,
            "PACKET_TX_RING",
            &egress_name,
        )?;
        let tx_ring = Mapping::new(&tx_fd, (V2_BLOCK_SIZE * tx_blocks) as usize, &egress_name)?;
        bind_to(&tx_fd, egress.index, 0, &egress_name)?;

        // The kernel refuses frames over MTU + link header + one VLAN tag.
        let tx_max_len = (frame_size - TX_DATA_OFFSET).min(egress.mtu as usize + 14 + 4);
        Ok(AfPacketQueue {
            rx_fd,
            tx_fd,
            rx_ring,
            tx_ring,
            version: config.version,
            frame_size,
            rx_frames,
            rx_head: 0,
            v3_block_size,
            v3_blocks,
            v3: V3Cursor::default(),
            tx_frames: (tx_blocks * per_block) as usize,
            tx_head: 0,
            tx_pending: 0,
            tx_max_len,
            fix_checksums: config.fix_checksums,
            ingress: config.ingress.clone(),
            egress: egress_name,
            stats: QueueStats::default(),
        })
    }

    /// The ingress interface.
    pub fn ingress(&self) -> &str {
        &self.ingress
    }

    /// The egress interface.
    pub fn egress(&self) -> &str {
        &self.egress
    }

    /// Copies `bytes` into the next transmit slot. False when the frame is
    /// too large or the ring is full even after a kick; the caller counts
    /// it (the TX path as `tx_dropped`, [`WorkerQueue::send_copy`]'s caller
    /// under its own reason).
    #[inline]
    fn enqueue_tx(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.tx_max_len || bytes.is_empty() {
            return false;
        }
        let slot = self.tx_head * self.frame_size;
        // SAFETY: `slot` is the start of slot `tx_head` < tx_frames, inside
        // the mapping; tp_status is its first (aligned) word.
        let status = unsafe { status_word(self.tx_ring.base.add(slot)) };
        if status.load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE {
            // Ring full: kick what is pending and look once more.
            if self.tx_pending > 0 {
                self.kick();
            }
            if status.load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE {
                return false;
            }
        }
        // SAFETY: the slot is AVAILABLE, so it is ours until we set
        // SEND_REQUEST; data and header stay inside the slot because
        // bytes.len() <= frame_size - TX_DATA_OFFSET.
        unsafe {
            let base = self.tx_ring.base.add(slot);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(TX_DATA_OFFSET), bytes.len());
            let hdr = base as *mut libc::tpacket2_hdr;
            (*hdr).tp_len = bytes.len() as u32;
            (*hdr).tp_snaplen = bytes.len() as u32;
        }
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tx_head = if self.tx_head + 1 == self.tx_frames {
            0
        } else {
            self.tx_head + 1
        };
        self.tx_pending += 1;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += bytes.len() as u64;
        true
    }

    /// One `send()` that makes the kernel transmit every slot marked
    /// SEND_REQUEST. Transient failures leave the slots queued for the next
    /// kick; frames the device refused are the kernel's drops.
    fn kick(&mut self) {
        // SAFETY: a zero-length send on our own socket; no buffer is read.
        let rc = unsafe { libc::send(self.tx_fd.0, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            self.tx_pending = 0;
            return;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            // Busy: the slots stay SEND_REQUEST and go with the next kick.
            Some(libc::EAGAIN) | Some(libc::EINTR) => {}
            // ENOBUFS: the device dropped one frame (its slot is free again);
            // the rest went out. Link down and the like: slots stay queued
            // and the ring fills up, counted as tx_dropped from then on.
            _ => {
                self.stats.tx_dropped += 1;
                self.tx_pending = 0;
            }
        }
    }

    /// Fixes up a received frame before the pipeline sees it: reinsert a
    /// stripped VLAN tag, complete a partial checksum. Returns the new head.
    #[inline]
    fn fix_frame(
        &mut self,
        buf: &mut [u8],
        mut head: usize,
        len: &mut usize,
        status: u32,
        tci: u16,
        tpid: u16,
    ) -> usize {
        if status & libc::TP_STATUS_VLAN_VALID != 0 && head >= 4 + HEADROOM && *len >= 12 {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            buf.copy_within(head..head + 12, head - 4);
            head -= 4;
            buf[head + 12..head + 14].copy_from_slice(&tpid.to_be_bytes());
            buf[head + 14..head + 16].copy_from_slice(&tci.to_be_bytes());
            *len += 4;
        }
        if status & libc::TP_STATUS_CSUMNOTREADY != 0 && self.fix_checksums {
            if checksum::complete_partial_l4(&mut buf[head..head + *len]) {
                self.stats.rx_csum_fixed += 1;
            } else {
                self.stats.rx_csum_unfixed += 1;
            }
        }
        head
    }

    fn poll_v2<F>(&mut self, burst: usize, process: &mut F) -> usize
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let hdr_len = libc::TPACKET2_HDRLEN;
        let mut received = 0;
        while received < burst {
            let slot = self.rx_head * self.frame_size;
            // SAFETY: slot `rx_head` < rx_frames lies inside the mapping.
            let base = unsafe { self.rx_ring.base.add(slot) };
            // SAFETY: tp_status is the slot's first, aligned word.
            let status_ref = unsafe { status_word(base) };
            let status = status_ref.load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the slot is ours (TP_STATUS_USER, acquired above)
            // until we hand it back; the header is at its start.
            let hdr = unsafe { std::ptr::read(base as *const libc::tpacket2_hdr) };
            // SAFETY: the slot is ours; the slice covers the slot after the
            // kernel's header and address, which nobody else touches now.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(base.add(hdr_len), self.frame_size - hdr_len)
            };
            self.rx_one(
                buf,
                hdr.tp_mac as usize,
                hdr_len,
                hdr.tp_len,
                hdr.tp_snaplen,
                status,
                hdr.tp_vlan_tci,
                hdr.tp_vlan_tpid,
                process,
            );
            status_ref.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.rx_head = if self.rx_head + 1 == self.rx_frames {
                0
            } else {
                self.rx_head + 1
            };
            received += 1;
        }
        received
    }

    fn poll_v3<F>(&mut self, burst: usize, process: &mut F) -> usize
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let hdr_len = libc::TPACKET3_HDRLEN;
        let mut received = 0;
        while received < burst {
            if self.v3.left == 0 {
                if self.v3.in_block {
                    self.release_v3_block();
                }
                let block = self.v3.block * self.v3_block_size;
                // SAFETY: block < v3_blocks lies inside the mapping; the
                // descriptor is at its start.
                let desc =
                    unsafe { self.rx_ring.base.add(block) } as *const libc::tpacket_block_desc;
                // SAFETY: block_status is an aligned u32 of the descriptor.
                let status = unsafe {
                    status_word(std::ptr::addr_of!((*desc).hdr.bh1.block_status) as *mut u8)
                };
                if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                    break;
                }
                // SAFETY: the block is ours (TP_STATUS_USER, acquired).
                let bh = unsafe { std::ptr::read(std::ptr::addr_of!((*desc).hdr.bh1)) };
                self.v3 = V3Cursor {
                    block: self.v3.block,
                    in_block: true,
                    left: bh.num_pkts,
                    offset: bh.offset_to_first_pkt as usize,
                };
                continue;
            }
            let block = self.v3.block * self.v3_block_size;
            let offset = self.v3.offset;
            if offset + hdr_len > self.v3_block_size {
                // A corrupt descriptor: give the block back.
                self.stats.rx_errors += 1;
                self.v3.left = 0;
                continue;
            }
            // SAFETY: offset + header inside the block (checked above).
            let base = unsafe { self.rx_ring.base.add(block + offset) };
            // SAFETY: the block is ours; a packet header sits at `offset`.
            let hdr = unsafe { std::ptr::read(base as *const libc::tpacket3_hdr) };
            let end =
                (hdr.tp_mac as usize + hdr.tp_snaplen as usize).min(self.v3_block_size - offset);
            // SAFETY: the slice is inside the block, after this packet's
            // header and address, and no other reference to it exists.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(base.add(hdr_len), end.saturating_sub(hdr_len))
            };
            self.rx_one(
                buf,
                hdr.tp_mac as usize,
                hdr_len,
                hdr.tp_len,
                hdr.tp_snaplen,
                hdr.tp_status,
                hdr.hv1.tp_vlan_tci as u16,
                hdr.hv1.tp_vlan_tpid,
                process,
            );
            self.v3.left -= 1;
            self.v3.offset += hdr.tp_next_offset as usize;
            received += 1;
        }
        if self.v3.left == 0 && self.v3.in_block {
            self.release_v3_block();
        }
        received
    }

    fn release_v3_block(&mut self) {
        let block = self.v3.block * self.v3_block_size;
        // SAFETY: as in poll_v3: the descriptor of a block we own.
        let desc = unsafe { self.rx_ring.base.add(block) } as *const libc::tpacket_block_desc;
        // SAFETY: block_status is an aligned u32 of the descriptor.
        let status =
            unsafe { status_word(std::ptr::addr_of!((*desc).hdr.bh1.block_status) as *mut u8) };
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.v3.in_block = false;
        self.v3.block = if self.v3.block + 1 == self.v3_blocks {
            0
        } else {
            self.v3.block + 1
        };
    }

    /// One received frame: check, fix up, process, dispose.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn rx_one<F>(
        &mut self,
        buf: &mut [u8],
        tp_mac: usize,
        hdr_len: usize,
        tp_len: u32,
        snaplen: u32,
        status: u32,
        tci: u16,
        tpid: u16,
        process: &mut F,
    ) where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let mut len = snaplen as usize;
        if tp_len != snaplen || tp_mac < hdr_len + HEADROOM || tp_mac - hdr_len + len > buf.len() {
            // Truncated by the slot size (GRO/GSO aggregate) or malformed.
            self.stats.rx_errors += 1;
            return;
        }
        let head = self.fix_frame(buf, tp_mac - hdr_len, &mut len, status, tci, tpid);
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        let mut frame = Frame::new(buf, head, len);
        match process(&mut frame) {
            Disposition::Tx => {
                if !self.enqueue_tx(frame.data()) {
                    self.stats.tx_dropped += 1;
                }
            }
            Disposition::Host => self.stats.host_packets += 1,
            Disposition::Drop => self.stats.freed += 1,
        }
    }
}

impl WorkerQueue for AfPacketQueue {
    fn poll<F>(&mut self, burst: usize, mut process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        Ok(match self.version {
            TpacketVersion::V2 => self.poll_v2(burst, &mut process),
            TpacketVersion::V3 => self.poll_v3(burst, &mut process),
        })
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        Ok(self.enqueue_tx(frame))
    }

    fn tx_pending(&self) -> usize {
        self.tx_pending
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.tx_pending > 0 {
            self.kick();
        }
        Ok(())
    }

    fn maintenance(&mut self) -> Result<(), IoError> {
        // PACKET_STATISTICS returns and resets the kernel's counters; the V3
        // struct starts like the V2 one.
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.rx_fd.0,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(IoError::last_os("PACKET_STATISTICS", &self.ingress));
        }
        self.stats.rx_ring_drops += u64::from(st.tp_drops);
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl Drop for AfPacketQueue {
    fn drop(&mut self) {
        // Last chance for frames still queued (the worker flushes on stop).
        if self.tx_pending > 0 {
            self.kick();
        }
    }
}
