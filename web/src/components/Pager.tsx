import { useState } from "preact/hooks";

/** The cursors of a cursor-paged list: the current one, and the way back and on. */
export function useCursors() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  return {
    cursor: cursors[cursors.length - 1],
    hasNewer: cursors.length > 1,
    newer: () => setCursors(cursors.slice(0, -1)),
    older: (next: string) => setCursors([...cursors, next]),
    reset: () => setCursors([null]),
  };
}

interface Props {
  label: string;
  cursors: ReturnType<typeof useCursors>;
  next: string | null | undefined;
}

export function Pager({ label, cursors, next }: Props) {
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" class="secondary" disabled={!cursors.hasNewer} onClick={cursors.newer}>
        Newer
      </button>
      <button type="button" class="secondary" disabled={!next} onClick={() => next && cursors.older(next)}>
        Older
      </button>
    </nav>
  );
}
