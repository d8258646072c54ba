/*
 * Preloaded (`--import`) into every process a test starts (test/support/process.ts): when the test's process
 * is gone, however it went (a crash, a kill -9 of the vitest worker), the IPC channel to it closes, and this
 * process goes too instead of running on unowned. Unref'd, so the channel never keeps the process alive.
 */
process.channel?.unref();
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
