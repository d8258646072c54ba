/** The service's only source of time, passed down so that versions and token lifetimes are testable. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
