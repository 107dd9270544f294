-- about: Connections ranked by retransmitted segments and by retransmit rate, with process and cgroup
-- limit: 20

-- title: Top connections by retransmitted segments
SELECT socket_id,
       service,
       laddr || ':' || CAST(lport AS VARCHAR) || ' > ' || raddr || ':' || CAST(rport AS VARCHAR) AS connection,
       role,
       comm,
       pid,
       cgroup,
       coalesce(retrans_segs, retrans_segs_seen) AS retrans_segs,
       segs_out,
       round(100.0 * retrans_segs / nullif(segs_out, 0), 2) AS retrans_pct,
       round(duration_ns / 1e9, 3) AS duration_s,
       last_state,
       error,
       counters
FROM flows
WHERE coalesce(retrans_segs, retrans_segs_seen) > 0
ORDER BY 8 DESC, socket_id
LIMIT {limit};

-- title: Top connections by retransmit rate (at least 100 segments sent)
SELECT socket_id,
       service,
       laddr || ':' || CAST(lport AS VARCHAR) || ' > ' || raddr || ':' || CAST(rport AS VARCHAR) AS connection,
       role,
       comm,
       pid,
       cgroup,
       retrans_segs,
       segs_out,
       round(100.0 * retrans_segs / nullif(segs_out, 0), 2) AS retrans_pct,
       round(duration_ns / 1e9, 3) AS duration_s
FROM flows
WHERE segs_out >= 100 AND retrans_segs > 0
ORDER BY retrans_pct DESC, socket_id
LIMIT {limit};
