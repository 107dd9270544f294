-- about: Who reset whom, in which state: resets sent and received (ephemeral ports shown as *)
-- limit: 50

-- title: Resets by direction, state and endpoints
SELECT direction,
       service,
       laddr || ':' || CASE WHEN lport >= 32768 THEN '*' ELSE CAST(lport AS VARCHAR) END AS local,
       raddr || ':' || CASE WHEN rport >= 32768 THEN '*' ELSE CAST(rport AS VARCHAR) END AS remote,
       coalesce(state, '(no socket)') AS state,
       coalesce(reason, '') AS reason,
       count(*) AS resets,
       array_to_string(array_agg(DISTINCT comm), ', ') AS processes,
       min(time) AS first,
       max(time) AS last
FROM resets
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY resets DESC, 1, 2, 3, 4, 5, 6
LIMIT {limit};
