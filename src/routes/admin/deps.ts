import type { DownloadLinks } from '../../admin/download-links.js';
import type { PassesDeps } from '../../passes/passes.js';

/** What the admin routes are given as their plugin options. */
export interface AdminDeps extends PassesDeps {
  adminToken: string;
  links: DownloadLinks;
  /** Tells this instance's bulk runner that a job was created, so it starts now rather than at its next poll. */
  wakeBulkRunner?: (() => void) | undefined;
}
