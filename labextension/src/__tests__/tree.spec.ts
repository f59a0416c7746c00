import { buildCallerTree, flattenTree, ICallerNode } from '../tree';
import { caller, snapshot } from './fixtures';

function shape(nodes: ICallerNode[]): any[] {
  return nodes.map(n => (n.children.length ? { [n.row.name]: shape(n.children) } : n.row.name));
}

describe('buildCallerTree', () => {
  it('nests children under their parent, in the parent’s children order', () => {
    const tree = buildCallerTree(snapshot().callers);
    expect(shape(tree)).toEqual([{ MainThread: ['ControlThread', 'ShellChannel', 'IOPub'] }, 'worker']);
    expect(tree.every(n => !n.orphan)).toBe(true);
  });

  it('follows the parent field when the parent does not list the child', () => {
    const rows = [caller('a'), caller('b', { parent: 'a' }), caller('c', { parent: 'b' })];
    expect(shape(buildCallerTree(rows))).toEqual([{ a: [{ b: ['c'] }] }]);
  });

  it('follows the children list when the child’s parent is not set', () => {
    const rows = [caller('a', { children: ['b'] }), caller('b')];
    expect(shape(buildCallerTree(rows))).toEqual([{ a: ['b'] }]);
  });

  it('orders children by the children list, then by row order', () => {
    const rows = [
      caller('p', { children: ['z', 'y'] }),
      caller('x', { parent: 'p' }),
      caller('y', { parent: 'p' }),
      caller('z', { parent: 'p' })
    ];
    expect(shape(buildCallerTree(rows))).toEqual([{ p: ['z', 'y', 'x'] }]);
  });

  it('makes a caller whose parent has no row an orphan root', () => {
    const rows = [caller('MainThread'), caller('child', { parent: 'gone' }), caller('grandchild', { parent: 'child' })];
    const tree = buildCallerTree(rows);
    expect(shape(tree)).toEqual(['MainThread', { child: ['grandchild'] }]);
    expect(tree[1].orphan).toBe(true);
    expect(tree[0].orphan).toBe(false);
    expect(tree[1].children[0].orphan).toBe(false);
  });

  it('ignores children names without rows', () => {
    const rows = [caller('a', { children: ['ghost'] })];
    expect(shape(buildCallerTree(rows))).toEqual(['a']);
  });

  it('lists every row once, even in a cycle or with a duplicate name', () => {
    const rows = [
      caller('a', { parent: 'b' }),
      caller('b', { parent: 'a' }),
      caller('self', { parent: 'self' }),
      caller('dup'),
      caller('dup')
    ];
    const tree = buildCallerTree(rows);
    expect(flattenTree(tree)).toHaveLength(5);
    expect(new Set(flattenTree(tree))).toEqual(new Set(rows));
    expect(tree.find(n => n.row.name === 'a' || n.row.name === 'b')!.orphan).toBe(true);
  });

  it('handles an empty list', () => {
    expect(buildCallerTree([])).toEqual([]);
  });
});
