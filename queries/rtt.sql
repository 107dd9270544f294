-- about: Smoothed RTT percentiles and jitter per service or peer over time
-- by: service
-- window: 10s

-- title: Smoothed RTT per {window_name} by {by_name} (µs)
SELECT date_bin({window}, time) AS window_start,
       {by} AS {by_name},
       count(*) AS samples,
       round(approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY srtt_us), 0) AS p50_us,
       round(approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY srtt_us), 0) AS p90_us,
       round(approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY srtt_us), 0) AS p99_us,
       max(srtt_us) AS max_us,
       round(stddev(srtt_us), 1) AS stddev_us,
       round(avg(rttvar_us), 1) AS avg_rttvar_us
FROM rtt_samples
GROUP BY 1, 2
ORDER BY 1, 2;
