-- about: Events per time window by kind: the shape of the incident
-- window: 1s

-- title: Events per {window_name} by kind (retransmits in segments)
SELECT date_bin({window}, time) AS window_start, kind, sum(n) AS events
FROM (
    SELECT time, 'retransmit_' || kind AS kind, segments AS n FROM retransmits WHERE counted
    UNION ALL
    SELECT time, 'retransmit_failed', 1 FROM retransmits WHERE NOT counted
    UNION ALL
    SELECT time, 'reset_' || direction, 1 FROM resets
    UNION ALL
    SELECT time, 'connect', 1 FROM state_changes WHERE old_state = 'CLOSE' AND new_state = 'SYN_SENT'
    UNION ALL
    SELECT time, 'accept', 1 FROM state_changes WHERE old_state = 'LISTEN' AND new_state = 'SYN_RECV'
    UNION ALL
    SELECT time, 'handshake_' || handshake, 1 FROM flows WHERE handshake IS NOT NULL AND handshake <> 'completed'
    UNION ALL
    SELECT time, 'events_lost', events_lost FROM recorder_stats WHERE events_lost > 0
) AS e
GROUP BY 1, 2
ORDER BY 1, 2;
