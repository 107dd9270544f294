-- about: Which service (or --by host, process, …), and which peer of it, accounts for the most retransmits, resets and failed handshakes
-- by: service
-- limit: 20

-- title: Hotspots by {by_name}
WITH ev AS (
    SELECT {by} AS {by_name}, segments AS retrans_segs, 0 AS resets, 0 AS failed_handshakes, comm, pid
    FROM retransmits WHERE counted
    UNION ALL
    SELECT {by} AS {by_name}, 0, 1, 0, comm, pid FROM resets
    UNION ALL
    SELECT {by} AS {by_name}, 0, 0, 1, comm, pid FROM flows
    WHERE handshake IS NOT NULL AND handshake <> 'completed'
), p AS (
    -- Numbers first, strings only for the few groups left.
    SELECT {by_name}, comm, pid,
           sum(retrans_segs) AS retrans_segs, sum(resets) AS resets, sum(failed_handshakes) AS failed_handshakes
    FROM ev GROUP BY 1, 2, 3
), g AS (
    SELECT {by_name},
           sum(retrans_segs) AS retrans_segs,
           sum(resets) AS resets,
           sum(failed_handshakes) AS failed_handshakes,
           -- Each process is one row of p already (comm, pid are its keys), so no
           -- DISTINCT: array_agg without it aggregates per group in bulk, with DISTINCT
           -- it kept a set per group (half the time of the by-peer statement). Sorted:
           -- answers must not vary.
           array_to_string(array_sort(array_agg(comm || '[' || CAST(pid AS VARCHAR) || ']')), ', ') AS processes
    FROM p GROUP BY 1
)
SELECT {by_name},
       retrans_segs,
       round(100.0 * retrans_segs / nullif(sum(retrans_segs) OVER (), 0), 1) AS retrans_share_pct,
       round(retrans_segs / {range_s}, 3) AS retrans_per_s,
       resets,
       round(100.0 * resets / nullif(sum(resets) OVER (), 0), 1) AS resets_share_pct,
       failed_handshakes,
       round(100.0 * failed_handshakes / nullif(sum(failed_handshakes) OVER (), 0), 1) AS failed_share_pct,
       processes
FROM g
WHERE retrans_segs + resets + failed_handshakes > 0
ORDER BY retrans_segs DESC, resets DESC, failed_handshakes DESC, {by_name}
LIMIT {limit};

-- title: Hotspots by service and peer (ephemeral ports shown as *)
WITH ev AS (
    SELECT {host}service, raddr, rport, segments AS retrans_segs, 0 AS resets, 0 AS failed_handshakes, comm, pid
    FROM retransmits WHERE counted
    UNION ALL
    SELECT {host}service, raddr, rport, 0, 1, 0, comm, pid FROM resets
    UNION ALL
    SELECT {host}service, raddr, rport, 0, 0, 1, comm, pid FROM flows
    WHERE handshake IS NOT NULL AND handshake <> 'completed'
), p AS (
    -- Numbers first, strings only for the few groups left.
    SELECT {host}service, raddr, CASE WHEN rport >= 32768 THEN NULL ELSE rport END AS port, comm, pid,
           sum(retrans_segs) AS retrans_segs, sum(resets) AS resets, sum(failed_handshakes) AS failed_handshakes
    FROM ev GROUP BY ALL
), g AS (
    SELECT {host}service,
           raddr || ':' || coalesce(CAST(port AS VARCHAR), '*') AS peer,
           sum(retrans_segs) AS retrans_segs,
           sum(resets) AS resets,
           sum(failed_handshakes) AS failed_handshakes,
           -- A peer is one (raddr, port) (the text splits at its last ':'): one row of p per process.
           array_to_string(array_sort(array_agg(comm || '[' || CAST(pid AS VARCHAR) || ']')), ', ') AS processes
    FROM p GROUP BY ALL
)
SELECT {host}service, peer,
       retrans_segs,
       round(100.0 * retrans_segs / nullif(sum(retrans_segs) OVER (), 0), 1) AS retrans_share_pct,
       resets,
       failed_handshakes,
       processes
FROM g
WHERE retrans_segs + resets + failed_handshakes > 0
ORDER BY retrans_segs DESC, resets DESC, failed_handshakes DESC, {host}service, peer
LIMIT {limit};
