#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc,char**argv){size_t n=strtoull(argv[1],0,0);int realloc_it=argc>2?atoi(argv[2]):1;int reps=argc>3?atoi(argv[3]):3;
 for(int r=0;r<reps;r++){char*p=malloc(n);p[0]=1;p[n-1]=2;if(realloc_it){p=realloc(p,n*2);if(p[0]!=1||p[n-1]!=2){puts("CORRUPT");return 1;}}free(p);}puts("ok");return 0;}
