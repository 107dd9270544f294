-- about: Why segments were retransmitted (timeout after an RTO, fast retransmit, tail loss probe), the RTO stalls (timeouts in a row on one connection), listeners that dropped connection attempts (full accept queues), the TCP packets this host dropped itself (by the kernel's reason), what limited connections (receiver window, send buffer, network) and which retransmits this host's own drops caused
-- by: service
-- limit: 50

-- title: Retransmitted segments by {by_name} and cause (timeout: after an RTO, the connection stalled; fast: duplicate ACKs or SACK; probe: tail loss probe; unknown: recorded before format 1.2)
SELECT {by} AS {by_name},
       sum(segments) AS retrans_segs,
       sum(CASE WHEN cause = 'timeout' THEN segments ELSE 0 END) AS timeout,
       sum(CASE WHEN cause = 'fast' THEN segments ELSE 0 END) AS fast,
       sum(CASE WHEN cause = 'probe' THEN segments ELSE 0 END) AS probe,
       sum(CASE WHEN cause = 'other' THEN segments ELSE 0 END) AS other,
       sum(CASE WHEN cause IS NULL THEN segments ELSE 0 END) AS unknown,
       count(DISTINCT socket_id) AS connections
FROM retransmits
WHERE counted AND kind = 'data'
GROUP BY 1
ORDER BY retrans_segs DESC, 1
LIMIT {limit};

-- title: RTO stalls: retransmission timeouts in a row on one connection (the n-th retry came RTO × 2^n after the one before; stalled_s runs from the first timeout to the last)
WITH t AS (
    -- A stall starts at the timer's first retry (backoff 0); a recording that begins
    -- inside a stall starts it at its first row.
    SELECT host, socket_id, time, rto_backoff, service, raddr, rport, comm,
           sum(CASE WHEN rto_backoff = 0 THEN 1 ELSE 0 END)
               OVER (PARTITION BY host, socket_id ORDER BY time ROWS UNBOUNDED PRECEDING) AS stall
    FROM retransmits
    WHERE rto_backoff IS NOT NULL AND kind = 'data'
), s AS (
    SELECT host, socket_id, stall,
           min(service) AS service,
           min(raddr || ':' || CAST(rport AS VARCHAR)) AS peer,
           min(comm) AS process,
           min(time) AS first_timeout,
           count(*) AS timeouts,
           max(rto_backoff) AS max_backoff,
           (CAST(max(time) AS BIGINT) - CAST(min(time) AS BIGINT)) / 1e9 AS stalled_s
    FROM t
    GROUP BY host, socket_id, stall
)
SELECT {host}service, peer, process, first_timeout, timeouts, max_backoff, round(stalled_s, 3) AS stalled_s
FROM s
ORDER BY stalled_s DESC, timeouts DESC, {host}first_timeout, peer
LIMIT {limit};

-- title: Listeners that dropped connection attempts because their accept queue was full (drops: SYNs and final ACKs dropped, which clients see as slow or failed connects; max_waiting: the most connections waiting for accept() at a walk; queue_limit: listen()'s backlog capped by net.core.somaxconn)
SELECT {host}laddr || ':' || CAST(lport AS VARCHAR) AS listener,
       min(comm) AS process,
       sum(drops) AS drops,
       max(accept_queue) AS max_waiting,
       max(accept_queue_max) AS queue_limit,
       min(CASE WHEN drops > 0 THEN time END) AS first_drop,
       max(CASE WHEN drops > 0 THEN time END) AS last_drop
FROM listeners
GROUP BY {host}socket_id, laddr, lport
HAVING sum(drops) > 0
ORDER BY drops DESC, listener
LIMIT {limit};

-- title: TCP packets this host dropped itself, by the kernel's reason (NETFILTER_DROP: a firewall rule; TCP_*: the TCP stack's own checks; QDISC_DROP: a full queue), direction (out: we sent it; in: we received it), peer and port (the peer's for out, ours for in)
SELECT {host}reason, direction,
       raddr AS peer,
       CASE WHEN direction = 'out' THEN rport ELSE lport END AS port,
       sum(packets) AS packets,
       count(DISTINCT laddr || ':' || CAST(lport AS VARCHAR) || '-' || raddr || ':' || CAST(rport AS VARCHAR)) AS connections,
       min(first_time) AS first_drop,
       max(time) AS last_drop
FROM drops
GROUP BY ALL
ORDER BY packets DESC, {host}reason, direction, peer, port
LIMIT {limit};

-- title: What limited connections, by {by_name} (busy_s: time with data in flight or waiting to be sent, closed connections; receiver_window / send_buffer: the shares of it when the peer's window or our send buffer held the sender back; network: the rest, paced by the path and congestion control; spurious_segs: retransmitted segments the peer reported by DSACK as received twice, spurious_pct their share of all retransmitted segments)
SELECT {by} AS {by_name},
       count(*) AS connections,
       round(sum(busy_ns) / 1e9, 3) AS busy_s,
       round(100.0 * sum(rwnd_limited_ns) / sum(busy_ns), 1) AS receiver_window_pct,
       round(100.0 * sum(sndbuf_limited_ns) / sum(busy_ns), 1) AS send_buffer_pct,
       round(100.0 - 100.0 * (sum(rwnd_limited_ns) + sum(sndbuf_limited_ns)) / sum(busy_ns), 1) AS network_pct,
       sum(dsack_dups) AS spurious_segs,
       round(100.0 * sum(dsack_dups) / nullif(sum(retrans_segs), 0), 1) AS spurious_pct
FROM flows
WHERE busy_ns > 0
GROUP BY 1
ORDER BY busy_s DESC, 1
LIMIT {limit};

-- title: Retransmitted segments whose original this host dropped, by {by_name}, reason and where (out: a packet of the connection dropped here before it left; in: the peer's packet dropped on arrival in another namespace of this host): a retransmit matches a drop of the same connection that began before it and whose sequence range holds its first byte (a range that wraps past 2^32 has seq_first > seq_last)
WITH r AS (
    SELECT host, socket_id, time, netns, laddr, lport, raddr, rport, segments, seq, {by} AS grp
    FROM retransmits
    WHERE counted AND kind = 'data' AND seq IS NOT NULL
), d AS (
    -- Duplicates the receiver already had are dropped as old data: an effect of a
    -- retransmission, never its cause.
    SELECT * FROM drops
    WHERE reason NOT IN ('TCP_OLD_DATA', 'TCP_OLD_SEQUENCE', 'TCP_OFOMERGE', 'TCP_OLD_ACK', 'TCP_TOO_OLD_ACK')
), matched AS (
    SELECT r.host, r.socket_id, r.time, r.segments, r.grp, d.reason, d.direction
    FROM r JOIN d
      ON d.host = r.host AND d.direction = 'out' AND d.netns = r.netns
     AND d.laddr = r.laddr AND d.lport = r.lport AND d.raddr = r.raddr AND d.rport = r.rport
    WHERE d.first_time <= r.time
      AND CASE WHEN d.seq_first <= d.seq_last THEN r.seq BETWEEN d.seq_first AND d.seq_last
               ELSE r.seq >= d.seq_first OR r.seq <= d.seq_last END
    UNION ALL
    SELECT r.host, r.socket_id, r.time, r.segments, r.grp, d.reason, d.direction
    FROM r JOIN d
      ON d.host = r.host AND d.direction = 'in'
     AND d.laddr = r.raddr AND d.lport = r.rport AND d.raddr = r.laddr AND d.rport = r.lport
    WHERE d.first_time <= r.time
      AND CASE WHEN d.seq_first <= d.seq_last THEN r.seq BETWEEN d.seq_first AND d.seq_last
               ELSE r.seq >= d.seq_first OR r.seq <= d.seq_last END
), once AS (
    -- A retransmit that several drop rows cover counts once, under the first reason.
    SELECT host, socket_id, time, min(segments) AS segments, min(grp) AS grp,
           min(reason) AS reason, min(direction) AS direction
    FROM matched
    GROUP BY host, socket_id, time
)
SELECT grp AS {by_name}, reason, direction,
       sum(segments) AS retrans_segs,
       count(DISTINCT socket_id) AS connections,
       min(time) AS first_retransmit,
       max(time) AS last_retransmit
FROM once
GROUP BY grp, reason, direction
ORDER BY retrans_segs DESC, grp, reason
LIMIT {limit};
