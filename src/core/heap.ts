// Binary min-heaps in arrays: the tenant's expiry and finished indexes, and walks over them in order.

/** Binary min-heap in an array, ordered by `before`; both indexes of the tenant use it. */
export function heapPush<Entry>(heap: Entry[], entry: Entry, before: (a: Entry, b: Entry) => boolean): void {
  heap.push(entry);
  let index = heap.length - 1;
  while (index > 0) {
    const parent = (index - 1) >> 1;
    if (!before(heap[index] as Entry, heap[parent] as Entry)) break;
    [heap[index], heap[parent]] = [heap[parent] as Entry, heap[index] as Entry];
    index = parent;
  }
}

export function heapPop<Entry>(heap: Entry[], before: (a: Entry, b: Entry) => boolean): void {
  const last = heap.pop() as Entry;
  if (heap.length === 0) return;
  heap[0] = last;
  let index = 0;
  for (;;) {
    const left = 2 * index + 1;
    const right = left + 1;
    let smallest = index;
    if (left < heap.length && before(heap[left] as Entry, heap[smallest] as Entry)) smallest = left;
    if (right < heap.length && before(heap[right] as Entry, heap[smallest] as Entry)) smallest = right;
    if (smallest === index) return;
    [heap[index], heap[smallest]] = [heap[smallest] as Entry, heap[index] as Entry];
    index = smallest;
  }
}
