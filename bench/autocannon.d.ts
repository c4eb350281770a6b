// The few autocannon types the benchmarks use (the package ships none).
declare module 'autocannon' {
  interface Options {
    url: string; connections?: number; duration?: number; method?: string; headers?: Record<string, string>; body?: string; pipelining?: number;
    /** Request steps; `setupRequest` may change each request before it is sent. */
    requests?: Array<{ setupRequest?: (request: { headers?: Record<string, string> }) => { headers?: Record<string, string> } }>;
  }
  interface Histogram { average: number; total: number; p50: number; p90: number; p99: number; p99_9: number; max: number }
  interface Result { requests: Histogram; latency: Histogram; errors: number; timeouts: number; non2xx: number; statusCodeStats: Record<string, { count: number }> }
  function autocannon(options: Options): Promise<Result>;
  export default autocannon;
}
