/**
 * The callers of a snapshot as a tree: parent → children.
 *
 * Pure: no JupyterLab imports, so the unit tests load it as is.
 */
import { ICallerRow } from './wire';

/** One caller in the tree. */
export interface ICallerNode {
  row: ICallerRow;
  children: ICallerNode[];
  /**
   * A root only because its parent is not in the snapshot (the parent stopped
   * while the reply was built, or a cycle in a malformed reply).
   */
  orphan: boolean;
}

/**
 * Build the caller tree of a snapshot's `callers` rows.
 *
 * A row's parent is its `parent` when that caller has a row; otherwise the
 * first row that lists it in `children`; otherwise it is a root (an `orphan`
 * when its `parent` names a caller without a row). Children come in their
 * parent's `children` order, then in row order. Every row appears exactly once,
 * even in a malformed reply (duplicate names, cycles).
 */
export function buildCallerTree(rows: ReadonlyArray<ICallerRow>): ICallerNode[] {
  const byName = new Map<string, number>();
  rows.forEach((row, i) => {
    if (row && typeof row.name === 'string' && !byName.has(row.name)) {
      byName.set(row.name, i);
    }
  });
  // parent index per row, -1 for a root
  const listedBy = new Map<string, number>();
  rows.forEach((row, i) => {
    for (const child of row?.children ?? []) {
      if (!listedBy.has(child)) {
        listedBy.set(child, i);
      }
    }
  });
  const parentOf: number[] = rows.map((row, i) => {
    if (!row) {
      return -1;
    }
    if (byName.get(row.name) !== i) {
      return -1; // a duplicate name: a root of its own
    }
    if (row.parent != null && byName.has(row.parent)) {
      const p = byName.get(row.parent)!;
      return p === i ? -1 : p;
    }
    const lister = listedBy.get(row.name);
    return lister !== undefined && lister !== i ? lister : -1;
  });
  const kids: number[][] = rows.map(() => []);
  parentOf.forEach((p, i) => {
    if (p >= 0) {
      kids[p].push(i);
    }
  });
  // order children: the parent's `children` order first, then row order
  kids.forEach((list, p) => {
    const order = rows[p]?.children ?? [];
    const rank = (i: number) => {
      const k = order.indexOf(rows[i].name);
      return k < 0 ? order.length + i : k;
    };
    list.sort((a, b) => rank(a) - rank(b) || a - b);
  });

  const seen = new Set<number>();
  const build = (i: number, orphan: boolean): ICallerNode => {
    seen.add(i);
    const node: ICallerNode = { row: rows[i], children: [], orphan };
    for (const k of kids[i]) {
      if (!seen.has(k)) {
        node.children.push(build(k, false));
      }
    }
    return node;
  };
  const roots: ICallerNode[] = [];
  rows.forEach((row, i) => {
    if (row && parentOf[i] < 0 && !seen.has(i)) {
      roots.push(build(i, row.parent != null && !byName.has(row.parent)));
    }
  });
  // rows caught in a cycle have no root above them: each comes up as an orphan root
  rows.forEach((row, i) => {
    if (row && !seen.has(i)) {
      roots.push(build(i, true));
    }
  });
  return roots;
}

/** Every caller of a tree, depth first (for tests and counts). */
export function flattenTree(nodes: ReadonlyArray<ICallerNode>): ICallerRow[] {
  const out: ICallerRow[] = [];
  const walk = (n: ICallerNode) => {
    out.push(n.row);
    n.children.forEach(walk);
  };
  nodes.forEach(walk);
  return out;
}
