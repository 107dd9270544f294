-- about: Who reset whom, in which state: resets sent and received (ephemeral ports shown as *)
-- limit: 50

-- title: Resets by direction, state and endpoints
WITH r AS (
    SELECT direction,
           service,
           laddr || ':' || CASE WHEN lport >= 32768 THEN '*' ELSE CAST(lport AS VARCHAR) END AS local,
           raddr || ':' || CASE WHEN rport >= 32768 THEN '*' ELSE CAST(rport AS VARCHAR) END AS remote,
           coalesce(state, '(no socket)') AS state,
           coalesce(reason, '') AS reason,
           comm,
           time
    FROM resets
), ranked AS (
    -- Numbers first, and the process lists only for the rows shown.
    SELECT direction, service, local, remote, state, reason,
           count(*) AS resets, min(time) AS first, max(time) AS last
    FROM r
    GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY resets DESC, 1, 2, 3, 4, 5, 6
    LIMIT {limit}
), procs AS (
    SELECT r.direction, r.service, r.local, r.remote, r.state, r.reason,
           -- Sorted: array_agg(DISTINCT) has no order of its own, and answers must not vary.
           array_to_string(array_sort(array_agg(DISTINCT r.comm)), ', ') AS processes
    FROM r JOIN ranked
      ON r.direction = ranked.direction AND r.service = ranked.service AND r.local = ranked.local
     AND r.remote = ranked.remote AND r.state = ranked.state AND r.reason = ranked.reason
    GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT ranked.direction, ranked.service, ranked.local, ranked.remote, ranked.state, ranked.reason, ranked.resets,
       procs.processes, ranked.first, ranked.last
FROM ranked LEFT JOIN procs
  ON procs.direction = ranked.direction AND procs.service = ranked.service AND procs.local = ranked.local
 AND procs.remote = ranked.remote AND procs.state = ranked.state AND procs.reason = ranked.reason
ORDER BY ranked.resets DESC, 1, 2, 3, 4, 5, 6;
