-- about: Retransmit rate over time: retransmitted ÷ sent segments (kernel counters, connections) and retransmits per second, by group
-- by: service
-- window: 10s

-- title: Host: retransmitted ÷ sent segments per {window_name} (ΔRetransSegs ÷ ΔOutSegs, the kernel's own counters)
SELECT date_bin({window}, time) AS window_start,
       host,
       coalesce(netns_name, CAST(netns AS VARCHAR)) AS netns,
       sum(retrans_segs) AS retrans_segs,
       sum(out_segs) AS out_segs,
       round(100.0 * sum(retrans_segs) / nullif(sum(out_segs), 0), 3) AS retrans_pct
FROM host_counters
GROUP BY 1, 2, 3
HAVING sum(out_segs) > 0 OR sum(retrans_segs) > 0
ORDER BY 1, 2, 3;

-- title: Retransmitted segments per {window_name}, by {by_name}
SELECT date_bin({window}, time) AS window_start,
       {by} AS {by_name},
       sum(segments) AS retrans_segs,
       round(sum(segments) / {window_s}, 2) AS retrans_per_s,
       count(DISTINCT socket_id) AS connections
FROM retransmits
WHERE counted
GROUP BY 1, 2
ORDER BY 1, retrans_segs DESC, 2;

-- title: Whole window, by {by_name}: retransmitted ÷ sent segments of connections with exact counters (sock_ops, at close)
SELECT {by} AS {by_name},
       count(*) AS connections,
       sum(retrans_segs) AS retrans_segs,
       sum(segs_out) AS segs_out,
       round(100.0 * sum(retrans_segs) / nullif(sum(segs_out), 0), 3) AS retrans_pct,
       sum(CASE WHEN counters <> 'complete' THEN retrans_segs_seen ELSE 0 END) AS retrans_segs_without_counters
FROM flows
GROUP BY 1
ORDER BY retrans_segs DESC NULLS LAST, 1;
