/-!
# Lists and trees

Structural induction over lists and over a binary tree (two induction hypotheses per
node), with the arithmetic left to `omega`. Core Lean only.
-/

namespace SegpilotExamples

variable {α β : Type}

/-- The sum of a list of naturals, by recursion (core's `List.sum` would let `simp` do
all the work). -/
def total : List Nat → Nat
  | [] => 0
  | x :: xs => x + total xs

/-- Reverse `xs` onto the accumulator `acc`. -/
def revOnto : List α → List α → List α
  | [], acc => acc
  | x :: xs, acc => revOnto xs (x :: acc)

theorem append_nil_right (xs : List α) : xs ++ [] = xs := by
  induction xs with
  | nil => rfl
  | cons x xs ih => rw [List.cons_append, ih]

theorem length_of_append (xs ys : List α) : (xs ++ ys).length = xs.length + ys.length := by
  induction xs with
  | nil => simp
  | cons x xs ih =>
    simp only [List.cons_append, List.length_cons, ih]
    omega

theorem length_of_map (f : α → β) (xs : List α) : (xs.map f).length = xs.length := by
  induction xs with
  | nil => rfl
  | cons x xs ih => simp only [List.map_cons, List.length_cons, ih]

theorem length_of_reverse (xs : List α) : xs.reverse.length = xs.length := by
  simp

theorem total_append (xs ys : List Nat) : total (xs ++ ys) = total xs + total ys := by
  induction xs with
  | nil => simp [total]
  | cons x xs ih =>
    simp only [List.cons_append, total, ih]
    omega

theorem length_revOnto (xs acc : List α) :
    (revOnto xs acc).length = xs.length + acc.length := by
  induction xs generalizing acc with
  | nil => simp [revOnto]
  | cons x xs ih =>
    simp only [revOnto, ih, List.length_cons]
    omega

theorem mem_append_swap {a : α} {xs ys : List α} (h : a ∈ xs ++ ys) : a ∈ ys ++ xs := by
  rw [List.mem_append] at h ⊢
  cases h with
  | inl hx => exact Or.inr hx
  | inr hy => exact Or.inl hy

/-- Unlabelled binary trees: enough shape for an induction with two hypotheses. -/
inductive Tree where
  | leaf : Tree
  | node : Tree → Tree → Tree

namespace Tree

def leaves : Tree → Nat
  | .leaf => 1
  | .node l r => leaves l + leaves r

def inner : Tree → Nat
  | .leaf => 0
  | .node l r => inner l + inner r + 1

def mirror : Tree → Tree
  | .leaf => .leaf
  | .node l r => .node (mirror r) (mirror l)

theorem leaves_eq_inner_add_one (t : Tree) : leaves t = inner t + 1 := by
  induction t with
  | leaf => rfl
  | node l r ihl ihr =>
    simp only [leaves, inner, ihl, ihr]
    omega

theorem mirror_mirror (t : Tree) : mirror (mirror t) = t := by
  induction t with
  | leaf => rfl
  | node l r ihl ihr => simp only [mirror, ihl, ihr]

theorem leaves_mirror (t : Tree) : leaves (mirror t) = leaves t := by
  induction t with
  | leaf => rfl
  | node l r ihl ihr =>
    simp only [mirror, leaves, ihl, ihr]
    omega

end Tree

end SegpilotExamples
