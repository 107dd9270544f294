-- about: Connections ranked by retransmitted segments and by retransmit rate, with process and cgroup
-- limit: 20

-- title: Top connections by retransmitted segments
-- Rank on numbers first; the service and the connection's text only for the rows shown.
WITH top AS (
    SELECT host, socket_id, family, laddr, lport, raddr, rport, role, comm, pid, cgroup,
           coalesce(retrans_segs, retrans_segs_seen) AS shown_segs,
           retrans_segs AS counted_segs, segs_out, duration_ns, last_state, error, counters
    FROM flows
    WHERE coalesce(retrans_segs, retrans_segs_seen) > 0
    ORDER BY shown_segs DESC, host, socket_id
    LIMIT {limit}
)
SELECT {host}socket_id,
       {service} AS service,
       laddr || ':' || CAST(lport AS VARCHAR) || ' > ' || raddr || ':' || CAST(rport AS VARCHAR) AS connection,
       role,
       comm,
       pid,
       cgroup,
       shown_segs AS retrans_segs,
       segs_out,
       round(100.0 * counted_segs / nullif(segs_out, 0), 2) AS retrans_pct,
       round(duration_ns / 1e9, 3) AS duration_s,
       last_state,
       error,
       counters
FROM top
ORDER BY shown_segs DESC, host, socket_id;

-- title: Top connections by retransmit rate (at least 100 segments sent)
WITH top AS (
    SELECT host, socket_id, family, laddr, lport, raddr, rport, role, comm, pid, cgroup,
           retrans_segs, segs_out,
           round(100.0 * retrans_segs / nullif(segs_out, 0), 2) AS retrans_pct,
           duration_ns
    FROM flows
    WHERE segs_out >= 100 AND retrans_segs > 0
    ORDER BY retrans_pct DESC, host, socket_id
    LIMIT {limit}
)
SELECT {host}socket_id,
       {service} AS service,
       laddr || ':' || CAST(lport AS VARCHAR) || ' > ' || raddr || ':' || CAST(rport AS VARCHAR) AS connection,
       role,
       comm,
       pid,
       cgroup,
       retrans_segs,
       segs_out,
       retrans_pct,
       round(duration_ns / 1e9, 3) AS duration_s
FROM top
ORDER BY retrans_pct DESC, host, socket_id;
